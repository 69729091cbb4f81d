//! Entry point: parse the command line, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use connect_monitor_gateway::cli::{self, Cli, Command};

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
            request,
            facts,
            live,
        } => cli::on_runtime(cli::explain(config, &claims, &request, facts.as_deref(), live)),
        #[cfg(feature = "demo")]
        Command::Demo { once } => cli::on_runtime(cli::demo(once)),
    }
}
