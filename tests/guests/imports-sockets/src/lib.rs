//! Tries to open a connection: sockets are linked and refuse to be made, so the connect fails
//! and the guest returns the error.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let stream =
        std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| QueryError(e.to_string()))?;
    drop(stream);
    SPEND.add(&[0], 1.0);
    Ok(())
}
