use clap::Parser;
use neoncopy::cli::{Cli, Command, LogFormat};
use neoncopy::config;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// The log file of a clone in its work directory (neoncopy.log, appended to, as pgcopydb
/// keeps one): every line at info (debug with -v), per-table lines included.
fn clone_log_file(cli: &Cli) -> Option<std::fs::File> {
    let Command::Clone(args) = &cli.command else {
        return None;
    };
    let dir = args
        .dir
        .dir
        .clone()
        .unwrap_or_else(neoncopy::config::default_dir);
    neoncopy::workdir::create_private_dir(&dir).ok()?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("neoncopy.log"))
        .ok()
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
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
    let screen = tracing_subscriber::fmt::layer()
        .with_writer(neoncopy::progress::LogWriter)
        .with_target(false);
    let screen = match cli.log_format {
        LogFormat::Text => screen.with_ansi(ansi).with_filter(filter).boxed(),
        LogFormat::Json => screen.json().with_ansi(false).with_filter(filter).boxed(),
    };
    let file = clone_log_file(cli).map(|f| {
        let level = if cli.verbose {
            "neoncopy=debug,info"
        } else {
            "info"
        };
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(f))
            .with_target(false)
            .with_ansi(false)
            .with_filter(EnvFilter::new(level))
    });
    tracing_subscriber::registry()
        .with(screen)
        .with(file)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match config::Command::from_cli(&cli.command, cli.quiet)? {
        config::Command::Clone(cfg) => {
            let dir = cfg.dir.clone();
            let summary = neoncopy::clone::run(cfg).await?;
            if !cli.quiet {
                neoncopy::fmt::out(&neoncopy::report::render_clone_summary(&summary, &dir))?;
            }
            Ok(())
        }
        config::Command::Check(cfg) => neoncopy::check::run(cfg).await,
        config::Command::CompareSchema(cfg) => neoncopy::compare::run_schema(cfg).await,
        config::Command::CompareData(cfg) => neoncopy::compare::run_data(cfg).await,
        config::Command::Progress(cfg) => neoncopy::list::progress(cfg).await,
        config::Command::List(cfg) => neoncopy::list::run(cfg).await,
        config::Command::Cutover(cfg) => neoncopy::cutover::run(cfg).await,
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
        Err(e) => {
            let (code, line) = neoncopy::error::exit_of(&e);
            if let Some(line) = line {
                eprintln!("neoncopy: error: {line}");
            }
            ExitCode::from(code)
        }
    }
}
