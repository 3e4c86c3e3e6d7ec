//! Sealing interrupted on the bank's machine leaves no customer data behind: spill files are
//! encrypted under a key that dies with the process, private (0600 in a 0700 directory), removed
//! on SIGINT, SIGTERM and SIGHUP, and swept by the next seal after a SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    c.env("STRONGROOM_PASSPHRASE", "interrupted seal test");
    c
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("strongroom runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spill_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".strongroom-seal-")
        })
        .map(|e| e.path())
        .collect()
}

fn run_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for spill in spill_dirs(dir) {
        for table in std::fs::read_dir(&spill).into_iter().flatten().flatten() {
            if table.path().is_dir() {
                for f in std::fs::read_dir(table.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    out.push(f.path());
                }
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o777)
}

struct Bank {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    out_dir: PathBuf,
    /// A customer's e-mail address, as it appears in the input.
    email: String,
}

fn bank() -> Bank {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    ok(bin().args(["keygen", "--room"]).arg(dir.join("room")));
    ok(bin()
        .args(["demo-data", "--customers", "40000", "--out"])
        .arg(dir.join("data")));
    ok(bin()
        .args(["party-key", "--name", "bigbank", "--out"])
        .arg(dir.join("bank.key")));
    let customers = std::fs::read_to_string(dir.join("data/customers.csv")).expect("csv");
    let email = customers
        .split([',', '\n'])
        .find(|f| f.contains('@'))
        .expect("an e-mail address")
        .to_string();
    let out_dir = dir.join("out");
    std::fs::create_dir(&out_dir).expect("out dir");
    Bank {
        _tmp: tmp,
        dir,
        out_dir,
        email,
    }
}

fn seal(b: &Bank) -> Child {
    bin()
        .arg("seal")
        .arg("--schema")
        .arg(b.dir.join("data/schema.toml"))
        .arg("--room-key")
        .arg(b.dir.join("room/keys/room.pub"))
        .arg("--party-key")
        .arg(b.dir.join("bank.key"))
        .arg("--table")
        .arg(format!(
            "customers={}",
            b.dir.join("data/customers.csv").display()
        ))
        .arg("--table")
        .arg(format!(
            "transactions={}",
            b.dir.join("data/transactions.csv").display()
        ))
        .arg("--out")
        .arg(b.out_dir.join("bank.sealed"))
        .args(["--memory-budget-mib", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("seal starts")
}

/// Waits until the seal has spilled at least two run files, then checks them.
fn wait_for_spills(b: &Bank, child: &mut Child) {
    let start = Instant::now();
    loop {
        let files = run_files(&b.out_dir);
        if files.len() >= 2 {
            for spill in spill_dirs(&b.out_dir) {
                assert_eq!(mode(&spill), 0o700, "{}", spill.display());
            }
            for f in &files {
                assert_eq!(mode(f), 0o600, "{}", f.display());
                let bytes = std::fs::read(f).unwrap_or_default();
                assert!(
                    !bytes
                        .windows(b.email.len())
                        .any(|w| w == b.email.as_bytes()),
                    "{} holds a customer's e-mail address in the clear",
                    f.display()
                );
            }
            return;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the seal ended before it spilled"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no spill seen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_interrupted_seal_leaves_no_customer_data_behind() {
    let b = bank();
    for signal in ["INT", "TERM", "HUP"] {
        let mut child = seal(&b);
        wait_for_spills(&b, &mut child);
        ok(Command::new("kill")
            .args(["-s", signal])
            .arg(child.id().to_string()));
        let status = child.wait().expect("wait");
        assert!(!status.success(), "SIG{signal}: {status:?}");
        assert_eq!(
            spill_dirs(&b.out_dir),
            Vec::<PathBuf>::new(),
            "SIG{signal} left spill files"
        );
        assert!(!b.out_dir.join("bank.sealed").exists());
    }

    // SIGKILL runs no handler: what is left is ciphertext under a key that died with the
    // process, and the next seal in the same directory sweeps it.
    let mut child = seal(&b);
    wait_for_spills(&b, &mut child);
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(!spill_dirs(&b.out_dir).is_empty());
    let mut next = seal(&b);
    assert!(next.wait().expect("wait").success());
    assert_eq!(spill_dirs(&b.out_dir), Vec::<PathBuf>::new());
    assert!(b.out_dir.join("bank.sealed").exists());
}
