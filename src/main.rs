use clap::Parser;
use neoncopy::cli::{Cli, Command, LogFormat};
use neoncopy::config::{CloneConfig, UsageError};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging(cli: &Cli) {
    // Above a clone's progress bars go warnings, errors and step changes, not a line per table.
    let bars = matches!(cli.command, Command::Clone(_))
        && matches!(cli.log_format, LogFormat::Text)
        && neoncopy::progress::wanted(cli.quiet);
    let default = if cli.verbose {
        "neoncopy=debug,info".to_string()
    } else if cli.quiet {
        "warn".to_string()
    } else if bars {
        format!("info,{}=warn", neoncopy::progress::TABLE_LOG)
    } else {
        "info".to_string()
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(neoncopy::progress::LogWriter)
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Clone(args) => {
            let mut cfg = CloneConfig::from_args(&args)?;
            cfg.show_bars = neoncopy::progress::wanted(quiet);
            let dir = cfg.dir.clone();
            let summary = neoncopy::clone::run(cfg).await?;
            neoncopy::fmt::out(&neoncopy::report::render_clone_summary(&summary, &dir))?;
            Ok(())
        }
        Command::List(cmd) => neoncopy::list::run(cmd).await,
        Command::Compare(cmd) => neoncopy::compare::run(cmd).await,
        Command::Check(args) => {
            let cfg = CloneConfig::from_args(&args.clone)?;
            let opts = cfg.check_options();
            let source = neoncopy::pg::Endpoint::new(neoncopy::pg::Side::Source, cfg.source)?;
            let target = neoncopy::pg::Endpoint::new(neoncopy::pg::Side::Target, cfg.target)?;
            if let Some(f) = &opts.filters {
                // A filter entry that names nothing is refused before the checks (exit 2).
                if let Ok(client) = source.connect_preflight().await {
                    f.validate(&client).await?;
                }
            }
            let checks = neoncopy::check::all(&source, &target, &opts).await;
            if args.json {
                neoncopy::fmt::out(&format!("{}\n", serde_json::to_string_pretty(&checks)?))?;
            } else {
                neoncopy::fmt::out(&neoncopy::check::render(&checks))?;
            }
            if checks
                .iter()
                .any(|c| c.status == neoncopy::check::Status::Fail)
            {
                return Err(neoncopy::check::ChecksFailed.into());
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("neoncopy: internal error{at}: {msg} (please report it)");
    }));
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("neoncopy: error: start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.downcast_ref::<neoncopy::check::ChecksFailed>().is_some()
                || e.downcast_ref::<neoncopy::compare::Differences>().is_some() =>
        {
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("neoncopy: error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<neoncopy::compare::CouldNotCompare>()
                    .is_some()
            {
                ExitCode::from(2)
            } else if e.downcast_ref::<neoncopy::clone::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
