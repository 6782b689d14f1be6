//! `tessera`: serve the API, apply migrations, or create an administrator.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_server::{build_tessera, settings::Settings, telemetry, Storage};

/// jemalloc returns the 19 MiB argon2 buffers to the system once a hash is done. With glibc's
/// malloc every hash left its buffer resident: `make bench` saw 30 MB after one login, 147 MB
/// after seven and 650 MB during a login storm, against a 64 MB budget (PRODUCT.md §8).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera user-and-account service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (applies pending migrations first unless database.migrate_on_start is
    /// false; creates the first superuser on an empty database).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create a superuser. The password is read from stdin when piped, else generated and
    /// printed once.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove expired data once (retention.*), print what went, and exit: for cron, or with
    /// retention.interval_secs = 0.
    Prune,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(&settings.log);
    let result = match cli.command {
        Command::Serve => serve(&settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::CreateAdmin { username, email } => create_admin(&settings, &username, email).await,
        Command::Prune => prune(&settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("tessera: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &Settings) -> Result<(), String> {
    let server = tessera_server::start(settings)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(created) = &server.bootstrapped {
        let name = created.user.username.as_deref().unwrap_or("");
        match &created.temp_password {
            Some(password) => println!(
                "\nCreated the first superuser.\n  username: {name}\n  password: {password}\n\
                 This password is shown once; it is not stored anywhere in clear.\n"
            ),
            None => {
                println!("\nCreated the first superuser '{name}' with the configured password.\n")
            }
        }
    }
    println!("Tessera listening on http://{}", server.addr);
    server
        .run()
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("tessera stopped");
    Ok(())
}

async fn migrate(settings: &Settings) -> Result<(), String> {
    let storage = Storage::connect(settings).map_err(|e| e.to_string())?;
    let applied = storage.migrate(settings).await.map_err(|e| e.to_string())?;
    if applied.is_empty() {
        println!("database schema is up to date");
    } else {
        for version in applied {
            println!("applied {version}");
        }
    }
    Ok(())
}

async fn prune(settings: &Settings) -> Result<(), String> {
    let storage = Storage::connect(settings).map_err(|e| e.to_string())?;
    let tessera = build_tessera(settings, &storage).map_err(|e| e.to_string())?;
    let pruned = tessera
        .retention
        .prune()
        .await
        .map_err(|e| format!("cannot prune: {e}"))?;
    println!(
        "purged {} deleted users; removed {} ended sessions, {} idempotency keys, {} usage keys, \
         {} quota counters",
        pruned.users,
        pruned.sessions,
        pruned.idempotency_keys,
        pruned.usage_keys,
        pruned.quota_counters
    );
    Ok(())
}

async fn create_admin(
    settings: &Settings,
    username: &str,
    email: Option<String>,
) -> Result<(), String> {
    let storage = Storage::connect(settings).map_err(|e| e.to_string())?;
    storage.migrate(settings).await.map_err(|e| e.to_string())?;
    let tessera = build_tessera(settings, &storage).map_err(|e| e.to_string())?;
    let mut piped = String::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin()
            .read_to_string(&mut piped)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    }
    let piped = piped.trim_end_matches(['\n', '\r']);
    let password = (!piped.is_empty()).then_some(piped);
    let created = tessera
        .users
        .create_superuser(username, email.as_deref(), password)
        .await
        .map_err(|e| format!("cannot create the administrator: {e}"))?;
    println!("created superuser {username} ({})", created.user.id);
    if let Some(password) = created.temp_password {
        println!("password: {password}\nThis password is shown once.");
    }
    Ok(())
}
