//! The `storytool` command: parse arguments, run one subcommand, print errors once with their causes.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use storytool::util::cancel::Interrupted;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            if error.chain().any(|cause| cause.is::<Interrupted>()) { ExitCode::from(130) } else { ExitCode::FAILURE }
        }
    }
}
