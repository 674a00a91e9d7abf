//! The `fleetca` binary: `fleetca [serve]`, `fleetca server-cert`, `fleetca admin set-password`.

use std::process::ExitCode;

use clap::Parser;
use fleetca::cli::{Cli, Command};
use fleetca::config::Config;
use fleetca::startup;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The client commands need no server settings, only a runtime.
    match cli.command {
        Some(Command::Client(command)) => return client(command),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "fleetca", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Some(Command::Manpage) => {
            use clap::CommandFactory;
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fleetca: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let config = match Config::resolve(&cli.settings.overrides()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleetca: {e}");
            return ExitCode::from(2);
        }
    };
    fleetca::logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetca: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::ServerCert(args) => fleetca::cli::server_cert(config, args).await,
            Command::Admin(cmd) => fleetca::cli::admin(config, cmd).await,
            Command::Ca(cmd) => fleetca::cli::ca(config, cmd).await,
            Command::Audit(cmd) => fleetca::cli::audit(config, cmd).await,
            Command::Backup(args) => fleetca::cli::backup(config, args).await,
            Command::Restore(args) => fleetca::cli::restore(config, args).await,
            Command::Client(_) | Command::Completions { .. } | Command::Manpage => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleetca: {e}");
            ExitCode::FAILURE
        }
    }
}

fn client(command: fleetca_cli::ClientCommand) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(fleetca_cli::run(command)),
        Err(e) => {
            eprintln!("fleetca: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
    // Held (shared) while serving, so `fleetca restore` cannot replace the database under us.
    let _lock = startup::lock_data_dir(&config.data_dir, false)?;
    let state = startup::prepare(config).await.map_err(|e| e.to_string())?;
    let running = startup::serve(state).map_err(|e| e.to_string())?;
    match running.tls_addr {
        Some(tls) => tracing::info!(addr = %running.addr, https = %tls, "fleetca listening"),
        None => tracing::info!(addr = %running.addr, "fleetca listening"),
    }
    // actix-web stops gracefully on SIGINT and SIGTERM, draining open requests.
    running.server.await.map_err(|e| e.to_string())?;
    tracing::info!("fleetca stopped");
    Ok(())
}
