//! The `strongroom` command line. Thin: parses arguments, calls the library, prints results.

mod dev;
mod render;
pub mod toolchain;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strongroom: a data clean room. Banks seal data, partners run WebAssembly queries under hard
/// limits, only vetted aggregates leave.
#[derive(Parser, Debug)]
#[command(name = "strongroom", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The partner's local development loop, on its own plaintext sample data.
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Query modules: vet and inspect.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Generate the synthetic bank (customers, card transactions) as CSV plus its schema.
    DemoData {
        /// Number of customers.
        #[arg(long, default_value_t = 1000)]
        customers: usize,
        /// Mean card transactions per customer.
        #[arg(long, default_value_t = 20.0)]
        transactions_per_customer: f64,
        /// Seed, so the same data can be generated again.
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// The bank-and-partner story on the example query: builds the example module, generates a
    /// synthetic bank, vets and runs the module, prints the result.
    Demo(dev::DemoArgs),
}

#[derive(Subcommand, Debug)]
enum ModuleCommand {
    /// Vet a module and print its manifest, or say exactly why it is refused.
    Inspect {
        /// The component (.wasm).
        module: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev(cmd) => dev::run(cmd),
        Command::Module(ModuleCommand::Inspect { module, json }) => dev::inspect(&module, json),
        Command::DemoData {
            customers,
            transactions_per_customer,
            seed,
            out,
        } => dev::demo_data(customers, transactions_per_customer, seed, &out),
        Command::Demo(args) => dev::demo(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
