//! Tries to open a connection: imports wasi:sockets and is refused at vetting.

hostile_common::transactions_module!(env!("CARGO_PKG_NAME"), run);

fn run() -> Result<(), QueryError> {
    let stream =
        std::net::TcpStream::connect("127.0.0.1:9").map_err(|e| QueryError(e.to_string()))?;
    drop(stream);
    SPEND.add(&[0], 1.0);
    Ok(())
}
