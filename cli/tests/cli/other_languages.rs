//! Query modules in Python and JavaScript, built as a partner builds them: the SDKs' build
//! commands (`guest-sdk-python`, `guest-sdk-js`) with the registries' toolchains
//! (componentize-py, componentize-js), run in a room next to the Rust modules of the same
//! questions, give exactly the Rust modules' aggregates. A Python exception and a JavaScript
//! error are the module's error text; `print` and `console.log` are captured; the SDKs bound a
//! value bit for bit as the room does; a declaration the room would refuse stops the build with
//! one line.
//!
//! The toolchains are installed from PyPI and npm into this test's target directory on first use.
//! Without Python, Node.js or the registries the tests say they were skipped, except under CI,
//! where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use super::commands::{dev_run_on_demo_data, example_module, ok, p};
use strongroom_contract::guest_languages::GuestLanguages;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo")
}

/// What a step needs is missing: skipped here, a failure under CI.
fn unavailable(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what} (CI installs it: .ci/run)");
    }
    eprintln!("skipped: {what}");
}

/// The toolchains, installed once per test run into this test's target directory; `None`
/// (after saying why) when they cannot be.
fn toolchains() -> Option<&'static GuestLanguages> {
    static ONCE: OnceLock<Result<GuestLanguages, String>> = OnceLock::new();
    let installed = ONCE.get_or_init(|| {
        GuestLanguages::install(
            &repo(),
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-toolchains"),
        )
        .map_err(|e| e.to_string())
    });
    match installed {
        Ok(t) => Some(t),
        Err(e) => {
            unavailable(&format!("the Python and JavaScript toolchains: {e}"));
            None
        }
    }
}

fn strongroom_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_strongroom"))
}

fn build_python(t: &GuestLanguages, query: &Path, out: &Path) -> Output {
    t.build_python(query, out, strongroom_bin()).expect("build")
}

fn build_js(t: &GuestLanguages, query: &Path, out: &Path) -> Output {
    t.build_js(query, out, strongroom_bin()).expect("build")
}

fn built(what: &str, out: Output) {
    assert!(
        out.status.success(),
        "building {what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A room with the demo bank and the partner's user list sealed to it, and a policy that
/// releases exact results (`mechanism = "none"`), so that released values are the aggregates.
struct Room {
    _tmp: tempfile::TempDir,
    room: PathBuf,
    bank: PathBuf,
    audience: PathBuf,
}

fn room() -> Room {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let room = dir.join("room");
    ok(&["keygen", "--room", p(&room), "--name", "languages"]);
    let data = dir.join("data");
    ok(&["demo-data", "--customers", "400", "--out", p(&data)]);
    let room_pub = room.join("keys/room.pub");
    let seal = |party: &str, schema: &Path, tables: &[(&str, PathBuf)], out: &Path| {
        let key = dir.join(format!("{party}.key"));
        ok(&["party-key", "--name", party, "--out", p(&key)]);
        let mut args: Vec<String> = ["seal", "--schema", p(schema), "--room-key", p(&room_pub)]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--party-key".into(), p(&key).into()]);
        for (name, file) in tables {
            args.extend(["--table".into(), format!("{name}={}", p(file))]);
        }
        args.extend(["--out".into(), p(out).into()]);
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    let bank = dir.join("bank.sealed");
    seal(
        "bigbank",
        &data.join("schema.toml"),
        &[
            ("customers", data.join("customers.csv")),
            ("transactions", data.join("transactions.csv")),
        ],
        &bank,
    );
    let audience = dir.join("audience.sealed");
    seal(
        "socialco",
        &data.join("partner/schema.toml"),
        &[("users", data.join("partner/users.csv"))],
        &audience,
    );
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"100\"\nmechanism = \"none\"\n\
         allow_unnoised = true\nmin_group_size = 1\nresult_delay_seconds = 0\n\
         [audience]\nmin_size = 10\nmax_size = 100000\n",
    )
    .expect("policy");
    ok(&["policy", "set", "--room", p(&room), "--file", p(&policy)]);
    Room {
        _tmp: tmp,
        room,
        bank,
        audience,
    }
}

impl Room {
    /// Runs `module` as the partner and returns the released metrics.
    fn run(&self, module: &Path, audience: bool) -> Value {
        let out = self._tmp.path().join("result.json");
        let mut args = vec![
            "run",
            "--room",
            p(&self.room),
            "--module",
            p(module),
            "--partner",
            "socialco",
            "--dataset",
            p(&self.bank),
            "--cost",
            "0.01",
            "--threads",
            "2",
            "--out",
            p(&out),
        ];
        if audience {
            args.extend(["--audience", p(&self.audience)]);
        }
        ok(&args);
        let result: Value =
            serde_json::from_str(&std::fs::read_to_string(&out).expect("result")).expect("json");
        result["metrics"].clone()
    }
}

#[test]
fn python_and_javascript_modules_give_the_rust_modules_exact_aggregates_in_a_room() {
    let Some(t) = toolchains() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let examples = repo().join("examples");
    let room = room();
    for (rust, python, js, audience) in [
        (
            "spend-by-category",
            "spend_by_category.py",
            "spend-by-category.js",
            false,
        ),
        (
            "messenger-audience",
            "messenger_audience.py",
            "messenger-audience.js",
            true,
        ),
    ] {
        let py_out = tmp.path().join(format!("{rust}-python.wasm"));
        built(
            python,
            build_python(t, &examples.join("python").join(python), &py_out),
        );
        let js_out = tmp.path().join(format!("{rust}-js.wasm"));
        built(
            js,
            build_js(t, &examples.join("javascript").join(js), &js_out),
        );

        // The manifest each SDK embedded is the Rust module's, byte for byte as decoded.
        let inspect = |module: &Path| -> Value {
            let mut v: Value =
                serde_json::from_str(&ok(&["module", "inspect", p(module), "--json"]))
                    .expect("json");
            for k in [
                "module_sha256",
                "size",
                "imports",
                "functions",
                "toolchain",
                "limits",
            ] {
                v.as_object_mut().expect("object").remove(k);
            }
            v
        };
        let rust_module = example_module(rust);
        assert_eq!(
            inspect(&py_out),
            inspect(&rust_module),
            "{python}'s manifest"
        );
        assert_eq!(inspect(&js_out), inspect(&rust_module), "{js}'s manifest");
        let toolchain = |module: &Path| -> String {
            serde_json::from_str::<Value>(&ok(&["module", "inspect", p(module), "--json"]))
                .expect("json")["toolchain"]
                .as_str()
                .expect("toolchain")
                .to_string()
        };
        assert!(toolchain(&py_out).starts_with("python"));
        assert!(toolchain(&js_out).starts_with("javascript"));

        // Run in the room: the released values are exact here, and the same for all three.
        let expected = room.run(&rust_module, audience);
        let groups: usize = expected
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| m["groups"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(groups > 10, "{rust}: {expected}");
        assert_eq!(room.run(&py_out, audience), expected, "{python}");
        assert_eq!(room.run(&js_out, audience), expected, "{js}");
    }
}

#[test]
fn a_python_exception_and_a_javascript_error_are_the_module_error_text_and_output_is_captured() {
    let Some(t) = toolchains() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::write(
        dir.join("failing.py"),
        r#"
from strongroom_guest import CATEGORY, FLOAT, Metric, Query, Table, rows

transactions = Table("transactions", mcc_group=CATEGORY, amount=FLOAT)
SPEND = Metric.sum("spend", [transactions.mcc_group], 0.0, 100.0)
query = Query(name="failing", version="0.1.0", reads=[transactions], metrics=[SPEND],
              max_groups_per_entity=10)


def check(amount):
    if amount > 400:
        raise ValueError("an amount this large was not expected")


@query.run
def run():
    print("purchases:", len(rows(transactions)))
    for tx in rows(transactions):
        check(tx.amount)
        SPEND.add((tx.mcc_group,), tx.amount)
"#,
    )
    .expect("write");
    // A partner's project: the SDK in its node_modules.
    std::fs::create_dir_all(dir.join("node_modules")).expect("mkdir");
    std::os::unix::fs::symlink(
        repo().join("guest-sdk-js"),
        dir.join("node_modules/strongroom-guest"),
    )
    .expect("link");
    std::fs::write(
        dir.join("failing.js"),
        r#"
import { CATEGORY, FLOAT, Metric, Query, Table, rows } from "strongroom-guest";

const transactions = new Table("transactions", { mcc_group: CATEGORY, amount: FLOAT });
const SPEND = Metric.sum("spend", [transactions.column("mcc_group")], 0, 100);

function check(amount) {
  if (amount > 400) throw new RangeError("an amount this large was not expected");
}

export const query = new Query({
  name: "failing", version: "0.1.0", reads: [transactions], metrics: [SPEND],
  maxGroupsPerEntity: 10,
  run() {
    console.log("purchases:", rows(transactions).length);
    for (const tx of rows(transactions)) {
      check(tx.amount);
      SPEND.add([tx.mcc_group], tx.amount);
    }
  },
});
"#,
    )
    .expect("write");
    let py = dir.join("failing-py.wasm");
    built("failing.py", build_python(t, &dir.join("failing.py"), &py));
    let js = dir.join("failing-js.wasm");
    built("failing.js", build_js(t, &dir.join("failing.js"), &js));

    let data = dir.join("data");
    ok(&["demo-data", "--customers", "60", "--out", p(&data)]);
    let dev_run = |module: &Path| -> Value {
        let out = dev_run_on_demo_data(module, &data);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
        })
    };
    for (module, says) in [
        (
            &py,
            "ValueError: an amount this large was not expected (at failing.py line 12, in check)",
        ),
        (
            &js,
            "RangeError: an amount this large was not expected (in check)",
        ),
    ] {
        let report = dev_run(module);
        assert_eq!(report["outcome"], "guest_error", "{report}");
        let detail = report["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&format!("run returned an error: {says}")),
            "{detail}"
        );
        assert!(
            !detail.contains("wasm backtrace") && !detail.contains("trap"),
            "an error, not a trap: {detail}"
        );
        // The customers who raised nothing still count; the output was captured.
        let entities = report["aggregate"]["entities"].as_u64().expect("entities");
        assert!(entities > 0 && entities < 60, "{entities}");
        assert!(
            report["stdout"]
                .as_str()
                .expect("stdout")
                .contains("purchases: "),
            "{report}"
        );
    }
}

#[test]
fn the_sdks_bound_values_bit_for_bit_as_the_room_does() {
    use strongroom_contract::manifest::FixedPoint;
    let Some(t) = toolchains() else { return };
    // Cases: every precision, bounds of both signs, values at and around halves, bounds, huge
    // values and infinities.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut cases = Vec::new();
    for i in 0..40_000u64 {
        let decimals = (next() % 10) as u8;
        let scale = 10f64.powi(i32::from(decimals));
        let magnitude = 10f64.powi((next() % 7) as i32);
        let a = (next() % 2_000_001) as f64 / 1000.0 - 1000.0;
        let (lower, upper) = match i % 3 {
            0 => (0.0, magnitude),
            1 => (-magnitude, magnitude),
            _ => (a.min(a * 0.5), a.max(a * 0.5)),
        };
        let value = match i % 6 {
            0 => f64::from_bits(next() >> 2) * if next() % 2 == 0 { 1.0 } else { -1.0 },
            1 => ((next() % 2_000_000) as f64 - 1_000_000.0 + 0.5) / scale,
            2 => lower,
            3 => upper,
            4 => {
                [f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 1e300, -1e300][(next() % 6) as usize]
            }
            _ => ((next() % 20_000_001) as f64 / 10_000.0 - 1000.0) * magnitude / 1000.0,
        };
        if value.is_nan() {
            continue;
        }
        let (fixed, clamped) = FixedPoint::new(lower, upper, decimals).bound(value);
        let text = |x: f64| format!("{x:e}");
        cases.push(serde_json::json!([
            text(value),
            text(lower),
            text(upper),
            decimals,
            fixed.to_string(),
            clamped
        ]));
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let vectors = tmp.path().join("bounding.json");
    std::fs::write(&vectors, Value::Array(cases).to_string()).expect("write");
    let root = repo();
    for (what, mut command) in [
        ("python", Command::new(t.python())),
        ("node", Command::new("node")),
    ] {
        let script = match what {
            "python" => root.join("guest-sdk-python/tests/check_bounding.py"),
            _ => root.join("guest-sdk-js/test/check-bounding.js"),
        };
        let out = command
            .arg(&script)
            .arg(&vectors)
            .output()
            .expect("checker runs");
        assert!(
            out.status.success(),
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("cases agree"),
            "{what} checked nothing"
        );
    }
}

#[test]
fn the_sdks_own_tests_pass_and_a_bad_declaration_stops_the_build_with_one_line() {
    let Some(t) = toolchains() else { return };
    let root = repo();
    for (what, out) in [
        (
            "python -m unittest",
            Command::new(t.python())
                .args(["-m", "unittest", "discover", "-s", "tests", "-q"])
                .current_dir(root.join("guest-sdk-python"))
                .output(),
        ),
        (
            "node --test",
            Command::new("node")
                .args(["--test", "test/sdk.test.js"])
                .current_dir(root.join("guest-sdk-js"))
                .output(),
        ),
    ] {
        let out = out.expect("runs");
        assert!(
            out.status.success(),
            "{what}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let tmp = tempfile::tempdir().expect("tmp");
    let bad_py = tmp.path().join("bad.py");
    std::fs::write(
        &bad_py,
        "from strongroom_guest import FLOAT, Metric, Query, Table\n\
         t = Table('transactions', amount=FLOAT)\n\
         SPEND = Metric.sum('spend', [t.amount], 0.0, 10.0)\n",
    )
    .expect("write");
    let out_wasm = tmp.path().join("bad.wasm");
    let out = build_python(t, &bad_py, &out_wasm);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("key part transactions.amount is a float column"),
        "{stderr}"
    );
    assert!(!out_wasm.exists(), "nothing written");

    // State kept from one customer to the next would be in the snapshot every customer starts
    // from: the build refuses it.
    let stateful = tmp.path().join("stateful.py");
    std::fs::write(
        &stateful,
        "from strongroom_guest import CATEGORY, Metric, Query, Table, rows\n\
         t = Table('transactions', mcc_group=CATEGORY)\n\
         N = Metric.count('n', [t.mcc_group])\n\
         SEEN = []\n\
         query = Query(name='s', version='1', reads=[t], metrics=[N], max_groups_per_entity=1)\n\
         @query.run\n\
         def run():\n    SEEN.append(1)\n",
    )
    .expect("write");
    let out = build_python(t, &stateful, &out_wasm);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("run() changed module-level state (SEEN)"),
        "{stderr}"
    );
    assert!(!out_wasm.exists(), "nothing written");

    let bad_js = tmp.path().join("bad.js");
    std::fs::write(
        &bad_js,
        format!(
            "import {{ Metric, Query }} from {:?};\n\
             export const query = new Query({{ name: 'x', version: '1', reads: [], \
             metrics: [Metric.sum('s', ['transactions.amount'], 5, 1)], maxGroupsPerEntity: 1, run() {{}} }});\n",
            p(&root.join("guest-sdk-js/index.js"))
        ),
    )
    .expect("write");
    let out = build_js(t, &bad_js, &out_wasm);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("lower bound 5 is above upper bound 1"),
        "{stderr}"
    );
    assert!(!out_wasm.exists(), "nothing written");

    // JavaScript: results on the same rows that change from call to call are state kept
    // between customers, refused while warming.
    let stateful_js = tmp.path().join("stateful.js");
    std::fs::write(
        &stateful_js,
        format!(
            "import {{ CATEGORY, Metric, Query, Table, rows }} from {:?};\n\
             const t = new Table('transactions', {{ mcc_group: CATEGORY }});\n\
             const N = Metric.count('n', [t.column('mcc_group')], {{ maxContributionsPerGroup: 99 }});\n\
             let calls = 0;\n\
             export const query = new Query({{ name: 's', version: '1', reads: [t], metrics: [N], \
             maxGroupsPerEntity: 2, run() {{ calls++; if (calls < 5) for (const r of rows(t)) N.addOne([r.mcc_group]); }} }});\n",
            p(&root.join("guest-sdk-js/index.js"))
        ),
    )
    .expect("write");
    let out = build_js(t, &stateful_js, &out_wasm);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("QueryError: run() gave other results for the same rows"),
        "{stderr}"
    );
    assert!(!out_wasm.exists(), "nothing written");
}

#[test]
fn the_sdks_carry_the_contracts_world_unchanged() {
    let root = repo();
    let world = std::fs::read(root.join("contract/wit/0.2/query.wit")).expect("world");
    for copy in [
        "guest-sdk-python/strongroom_guest/wit/query.wit",
        "guest-sdk-js/wit/query.wit",
    ] {
        assert!(
            std::fs::read(root.join(copy)).expect("copy") == world,
            "{copy} differs from contract/wit/0.2/query.wit: copy it again"
        );
    }
}
