//! Entry point: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use connect_monitor_gateway::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging();
    match cli.command {
        Command::Serve { config } => cli::serve(config).await,
        Command::Check { config } => cli::check(config),
        Command::Explain {
            config,
            claims,
            request,
            facts,
            live,
        } => cli::explain(config, &claims, &request, facts.as_deref(), live).await,
        #[cfg(feature = "demo")]
        Command::Demo { once } => cli::demo(once).await,
    }
}
