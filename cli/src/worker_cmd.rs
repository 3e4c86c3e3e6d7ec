//! `strongroom worker`: one partition of a room's job, for the room's engine.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use strongroom::remote::spec::MAX_SPEC_BYTES;
use strongroom::remote::worker::{self, Answer, EXIT_TRANSIENT};

/// Reads the spec and the token on stdin, runs the partition, writes the answer on stdout.
pub(crate) fn worker(module: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut input = zeroize::Zeroizing::new(String::new());
    // The spec's limit, the token's line, and their line ends.
    let limit = (MAX_SPEC_BYTES + 256) as u64;
    if let Err(e) = std::io::stdin().take(limit).read_to_string(&mut input) {
        eprintln!("strongroom worker: reading stdin: {e}");
        return Ok(ExitCode::from(EXIT_TRANSIENT as u8));
    }
    let mut lines = input.lines();
    let (spec, token) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let answer = worker::run(spec, token, module);
    let status = answer.exit_status();
    match &answer {
        Answer::Partial(bytes) | Answer::Refused(bytes, _) => {
            let mut out = std::io::stdout().lock();
            if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
                eprintln!("strongroom worker: writing the answer failed");
                return Ok(ExitCode::from(EXIT_TRANSIENT as u8));
            }
        }
        Answer::Transient(_) => {}
    }
    match &answer {
        Answer::Refused(_, why) => eprintln!("strongroom worker: refused: {why}"),
        Answer::Transient(why) => eprintln!("strongroom worker: {why} (the engine may retry)"),
        Answer::Partial(_) => {}
    }
    Ok(ExitCode::from(status as u8))
}
