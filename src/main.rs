//! Entry point: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use connect_monitor_gateway::cli::{self, Cli, Command};

// mimalloc, measured with benches/gateway.sh on 2 cores: about 25% less CPU per
// request and 30% more requests/s than glibc's malloc, for about 1.5 MB more
// resident memory idle (`no_thp`: without it, transparent huge pages made it 10 MB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    match cli.command {
        // `serve` sizes its own runtime from the configuration it loads.
        Command::Serve { config } => cli::serve(config),
        Command::Check { config } => cli::check(config),
        Command::Explain {
            config,
            claims,
            question,
            facts,
            live,
        } => cli::on_runtime(cli::explain(config, &claims, &question, facts.as_deref(), live)),
        Command::VerifyAudit { file } => cli::verify_audit(&file),
        #[cfg(feature = "demo")]
        Command::Demo { once } => cli::on_runtime(cli::demo(once)),
    }
}
