//! Building query modules written in Python and JavaScript from source: the SDKs of this
//! repository (`guest-sdk-python`, `guest-sdk-js`) with the registries' toolchains
//! (componentize-py from PyPI, componentize-js from npm), installed into a directory the caller
//! names. The tests and the benchmarks build the examples this way, as a partner would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::toolchain::ToolchainError;

/// The Python and JavaScript SDKs, installed with their toolchains.
#[derive(Debug, Clone)]
pub struct GuestLanguages {
    repo: PathBuf,
    python: PathBuf,
    python_build: PathBuf,
}

fn setup(what: &str, command: &mut Command) -> Result<(), ToolchainError> {
    match command.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
        Err(e) => Err(format!("{what}: {e}").into()),
    }
}

/// Whether `made` exists and was written after `from` (which exists).
fn newer(made: &Path, from: &Path) -> bool {
    let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((time(made), time(from)), (Some(a), Some(b)) if a > b)
}

/// The Python of the virtual environment at `venv`, made with `python3 -m venv` if missing.
fn virtual_env(venv: &Path) -> Result<PathBuf, ToolchainError> {
    let python = venv.join("bin").join("python");
    if !python.exists() {
        setup(
            "python3 -m venv",
            Command::new("python3").arg("-m").arg("venv").arg(venv),
        )?;
    }
    Ok(python)
}

/// PySpark and the versions the Spark engine was measured with (docs/deploy.md).
pub const PYSPARK: &[&str] = &["pyspark==4.3.0", "pyarrow==26.0.1", "pandas==3.1.1"];

/// A Python with PySpark ([`PYSPARK`]) in a virtual environment at `venv`, installed from PyPI
/// unless it is there: what runs the Spark engine's launcher in the tests and benchmarks. Spark
/// also needs Java (17).
pub fn pyspark(venv: &Path) -> Result<PathBuf, ToolchainError> {
    let python = virtual_env(venv)?;
    let has = Command::new(&python)
        .args(["-c", "import pyspark, pyarrow, pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        setup(
            "pip install pyspark",
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PYSPARK),
        )?;
    }
    Ok(python)
}

impl GuestLanguages {
    /// Installs both SDKs from the repository at `repo` into `dir`: a Python virtual
    /// environment with the SDK (editable, so builds use this checkout) and componentize-py, and
    /// the JavaScript SDK's dependencies and the examples' link to it (`npm ci`, from their
    /// lock files). Needs `python3` and `npm`, and the registries.
    pub fn install(repo: &Path, dir: &Path) -> Result<GuestLanguages, ToolchainError> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let venv = dir.join("python");
        let python = virtual_env(&venv)?;
        // Installed before from this checkout's SDK (editable: its code is read in place): only
        // a changed pyproject.toml, or another checkout's SDK, needs pip again.
        let python_build = venv.join("bin").join("strongroom-guest");
        let sdk = repo.join("guest-sdk-python");
        let installed_here = Command::new(&python)
            .args([
                "-c",
                "import strongroom_guest; print(strongroom_guest.__file__)",
            ])
            .output()
            .is_ok_and(|out| {
                let at = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                out.status.success() && at.starts_with(&sdk)
            });
        if !installed_here || !newer(&python_build, &sdk.join("pyproject.toml")) {
            setup(
                "pip install guest-sdk-python",
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "-e",
                    ])
                    .arg(&sdk),
            )?;
        }
        for package in ["guest-sdk-js", "examples/javascript"] {
            // npm records what it installed; the lock file newer than that needs `npm ci`.
            let dir = repo.join(package);
            if newer(
                &dir.join("node_modules").join(".package-lock.json"),
                &dir.join("package-lock.json"),
            ) {
                continue;
            }
            setup(
                &format!("npm ci in {package}"),
                Command::new("npm")
                    .args(["ci", "--silent", "--no-audit", "--no-fund"])
                    .current_dir(repo.join(package)),
            )?;
        }
        Ok(GuestLanguages {
            repo: repo.to_path_buf(),
            python_build,
            python,
        })
    }

    /// The virtual environment's Python.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Builds a Python query (`strongroom-guest build`), with `strongroom` embedding the
    /// manifest.
    pub fn build_python(
        &self,
        query: &Path,
        out: &Path,
        strongroom: &Path,
    ) -> Result<Output, ToolchainError> {
        self.build(
            &mut Command::new(&self.python_build),
            query,
            out,
            strongroom,
        )
    }

    /// Builds a JavaScript query (`strongroom-guest-js build`); `strongroom-guest` resolves from
    /// the query's directory upwards, as in a partner's project.
    pub fn build_js(
        &self,
        query: &Path,
        out: &Path,
        strongroom: &Path,
    ) -> Result<Output, ToolchainError> {
        let mut node = Command::new("node");
        node.arg(self.repo.join("guest-sdk-js").join("build.js"));
        self.build(&mut node, query, out, strongroom)
    }

    /// `COMMAND build QUERY -o OUT -q`, both build commands' shape.
    fn build(
        &self,
        command: &mut Command,
        query: &Path,
        out: &Path,
        strongroom: &Path,
    ) -> Result<Output, ToolchainError> {
        command
            .arg("build")
            .arg(query)
            .arg("-o")
            .arg(out)
            .arg("-q")
            .env("STRONGROOM", strongroom)
            .output()
            .map_err(|e| format!("cannot run the build command: {e}").into())
    }
}
