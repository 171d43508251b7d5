//! `cargo run -p doximity-doctor [-- --mock]`: checks the deployment the environment describes
//! against the provider's live metadata, prints one line per check, and exits 0 (all ok),
//! 1 (a check failed) or 2 (warnings only). See `docs/doctor.md`.

use std::io::Write as _;
use std::process::ExitCode;

const USAGE: &str = "usage: doximity-doctor [--mock]

Checks a Sign in with Doximity deployment, configured by the environment (DOXIMITY_ISSUER,
DOXIMITY_CA_CERT, DOXIMITY_CLIENT_ID, DOXIMITY_CLIENT_SECRET, DOXIMITY_REDIRECT_URI,
DOXIMITY_COOKIE_KEY, DOXIMITY_DPOP_KEY), against the provider's live metadata.

  --mock   start the embedded mock provider and check against it (its issuer, CA and demo
           client replace DOXIMITY_ISSUER, DOXIMITY_CA_CERT and the credentials)

Exit status: 0 every check ok, 1 a check failed, 2 warnings only, 64 bad arguments.
";

#[tokio::main]
async fn main() -> ExitCode {
    let mut mock = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--mock" => mock = true,
            "-h" | "--help" => {
                let _ = std::io::stdout().write_all(USAGE.as_bytes());
                return ExitCode::SUCCESS;
            }
            _ => {
                let _ = std::io::stderr().write_all(USAGE.as_bytes());
                return ExitCode::from(64);
            }
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let report = if mock {
        let provider = match doximity_mock::MockProvider::builder().start().await {
            Ok(provider) => provider,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "cannot start the mock provider: {e}");
                return ExitCode::from(1);
            }
        };
        let report = doximity_doctor::run(doximity_doctor::mock_lookup(&provider, env)).await;
        provider.shutdown().await;
        report
    } else {
        doximity_doctor::run(env).await
    };
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{report}");
    let count = |s| report.checks.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "{} ok, {} warn, {} FAIL",
        count(doximity_doctor::Status::Ok),
        count(doximity_doctor::Status::Warn),
        count(doximity_doctor::Status::Fail)
    );
    ExitCode::from(report.exit_code())
}
