//! Writes each fuzz target's seed corpus (real, valid inputs from the fixtures) under the
//! directory given, one subdirectory per target, so fuzzing starts from inputs that pass every
//! check and mutates inward from there.

use std::path::Path;

use strongroom_fuzz::fixture;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: fuzz-seeds DIR");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    let f = fixture();
    write(dir, "sealed_file", "bank.sealed", &f.sealed)?;
    let header = serde_json::to_vec(&f.header).map_err(std::io::Error::other)?;
    write(
        dir,
        "sealed_content",
        "header",
        &[&[0u8][..], &header].concat(),
    )?;
    for (i, chunk) in f.chunks.iter().enumerate() {
        write(
            dir,
            "sealed_content",
            &format!("chunk-{i}"),
            &[&[i as u8 + 1][..], chunk].concat(),
        )?;
    }
    let schema =
        strongroom::dataset::schema::DatasetSchema::parse_inline(&f.header.schema_toml, "seed")
            .map_err(std::io::Error::other)?;
    write(
        dir,
        "schema_and_policy",
        "schema",
        schema.to_inline_toml().as_bytes(),
    )?;
    write(
        dir,
        "schema_and_policy",
        "policy",
        b"partner = \"socialco\"\ndataset = \"bank\"\nbudget_rho = \"1.0\"\nmin_group_size = 20\nmodes = [\"isolated\", \"table\"]\n[audience]\nmin_size = 10\n",
    )?;
    write(dir, "audit_export", "export", f.export.as_bytes())?;
    write(
        dir,
        "notes_receipts_keys",
        "checkpoint",
        f.checkpoint.as_bytes(),
    )?;
    write(
        dir,
        "notes_receipts_keys",
        "room.pub",
        f.room.public.encode().as_bytes(),
    )?;
    write(dir, "manifest", "empty", b"SRMF\x01")?;
    write(
        dir,
        "http_requests",
        "submit",
        b"\x0e\x01\x00{\"module_sha256\":\"00\",\"dataset\":\"bank\",\"cost\":\"0.1\"}",
    )?;
    Ok(())
}
