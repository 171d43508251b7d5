//! `cargo run -p device-cli [-- --help]`: sign in with Doximity from a terminal. See the
//! crate docs for the configuration.

use std::process::ExitCode;

#[tokio::main]
#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool talks to its terminal"
)]
async fn main() -> ExitCode {
    let env = device_cli::process_env();
    let options = match device_cli::Options::from_args(std::env::args().skip(1), &env) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("device-cli: {e:#}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        print!("{}", device_cli::USAGE);
        return ExitCode::SUCCESS;
    }
    match device_cli::run(&env, &options, &mut std::io::stdout()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("device-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}
