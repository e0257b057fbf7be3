//! The `guichet` binary: parses the command line, sets up logging and the runtime, runs.

use clap::Parser;
use server::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

/// Stack size of runtime threads: SurrealDB's parser and executor recommend 10 MiB.
const THREAD_STACK: usize = 10 << 20;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Schema => {
            print!("{}", graphql_schema::sdl());
            Ok(())
        }
        Command::Serve(config) => {
            let filter = EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,surrealdb=warn,surrealkv=warn"));
            if config.log_json {
                tracing_subscriber::fmt().json().with_env_filter(filter).init();
            } else {
                tracing_subscriber::fmt().with_env_filter(filter).init();
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(THREAD_STACK)
                .build()?;
            runtime.block_on(server::run(*config))
        }
    }
}
