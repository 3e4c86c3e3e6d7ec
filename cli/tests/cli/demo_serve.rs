//! `strongroom demo --serve`: the demo's room served with its web console, a login printed for
//! each role, and what each role sees first already there (a module waiting for the bank, a job
//! of the partner's).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::service_process::{bin, json, repo};

/// One HTTP/1.1 request over a fresh connection; the whole answer as text.
fn http(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn the_demo_serves_its_room_with_the_console_and_a_login_per_role() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("demo");
    let mut child = bin()
        .args([
            "demo",
            "--customers",
            "5000",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            "--out",
        ])
        .arg(&out)
        .arg("--examples")
        .arg(repo().join("examples"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("demo");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut base, mut tokens, mut fingerprint) = (None, Vec::new(), None);
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.strip_prefix("The web console of the demo room: ") {
            base = Some(url.trim().to_string());
        } else if let Some(rest) = line.trim().strip_prefix("log in as ") {
            // "log in as NAME (ROLE) with TOKEN"
            let role = rest.split(['(', ')']).nth(1).expect("role").to_string();
            let token = rest.rsplit(' ').next().expect("token").to_string();
            tokens.push((role, token));
        } else if line.contains("pins the room's key fingerprint") {
            fingerprint = line
                .split_whitespace()
                .find(|w| w.len() == 24 && w.matches('-').count() == 4)
                .map(String::from);
        } else if line.starts_with("Serving until Ctrl-C") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the demo takes too long"
        );
    }
    let base = base.expect("the console's address is printed");
    let roles: Vec<&str> = tokens.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["bank", "partner", "auditor"], "a login per role");
    assert!(fingerprint.is_some(), "the fingerprint to pin is printed");
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    let page = http(
        &addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<title>Strongroom console</title>"));
    let body = format!("{{\"token\": \"{}\"}}", tokens[0].1);
    let login = http(
        &addr,
        &format!(
            "POST /console/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    assert!(
        login
            .to_ascii_lowercase()
            .contains("set-cookie: strongroom_session="),
        "{login}"
    );

    // The bank's console opens on a module waiting for its decision; the partner's on a job.
    let modules = json(bin().args(["--server", &base, "--token", &tokens[0].1, "module", "list"]));
    let waiting = modules
        .as_array()
        .expect("modules")
        .iter()
        .filter(|m| m["decision"].is_null())
        .count();
    assert_eq!(waiting, 1, "{modules}");
    let jobs = json(bin().args([
        "--server",
        &base,
        "--token",
        &tokens[1].1,
        "job",
        "list",
        "--json",
    ]));
    assert_eq!(
        jobs.as_array().map(Vec::len),
        Some(1),
        "the partner's one job: {jobs}"
    );
    child.kill().expect("stop");
    let _ = child.wait();
}
