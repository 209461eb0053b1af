//! `pfc apikey create|list|revoke`: API keys for programs, CI and workers (docs/security.md).
//!
//! By default it calls `pfc.jobs.v1.ApiKeyService` on `--jobs-url` with `PFC_TOKEN` (a
//! credential with `jobs:admin` when the server requires one). `--direct` writes to the job
//! store's Redis instead (`PFC_REDIS_URL`…), which is how the first admin key is made:
//! `kubectl exec deploy/pfc-jobs -- pfc apikey create --direct --scope jobs:admin --name ops`.

use std::sync::Arc;

use anyhow::{bail, Context};
use pfc_proto::jobs::v1 as pb;
use pfc_proto::jobs::v1::api_key_service_client::ApiKeyServiceClient;

/// `pfc apikey` flags.
#[derive(Debug, clap::Args)]
pub struct ApiKeyArgs {
    #[command(subcommand)]
    command: ApiKeyCommand,
    /// The jobs core (gRPC).
    #[arg(
        long,
        env = "PFC_JOBS_URL",
        default_value = "http://127.0.0.1:50051",
        global = true
    )]
    jobs_url: String,
    /// Credential for the call (`jobs:admin`), sent as `authorization: Bearer …`.
    #[arg(long, env = "PFC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Use the job store directly instead of the jobs core (bootstrap: the first admin key).
    #[arg(long, global = true)]
    direct: bool,
    /// The job store, for `--direct`.
    #[command(flatten)]
    store: pfc_queue::StoreArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it (once: only its hash is stored) on stdout.
    Create {
        /// What it is for (1-64 characters: letters, digits, `_`, `-`, `.`).
        #[arg(long)]
        name: String,
        /// A scope to grant (repeat, or comma-separate): jobs:read, jobs:write, jobs:admin,
        /// worker, chat.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
        /// For a worker key: a kind it may run (repeat, or comma-separate; default any).
        #[arg(long = "kind", value_delimiter = ',')]
        kinds: Vec<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id: refused from the next call on.
    Revoke {
        /// The key's id (`pfc apikey list`).
        id: String,
    },
}

/// Runs `pfc apikey …`.
pub async fn run(mut args: ApiKeyArgs) -> anyhow::Result<()> {
    if args.direct {
        args.store
            .load_password_file()
            .context("failed to read the Redis password file")?;
        let keys = pfc_jobs::api_keys(&args.store)?;
        if args.store.redis_url.is_none() {
            bail!("--direct needs the job store: set --redis-url / PFC_REDIS_URL");
        }
        return direct(keys, args.command).await;
    }
    let channel = tonic::transport::Endpoint::from_shared(args.jobs_url.clone())
        .with_context(|| format!("invalid --jobs-url {:?}", args.jobs_url))?
        .connect()
        .await
        .with_context(|| format!("failed to connect to {}", args.jobs_url))?;
    let mut client = ApiKeyServiceClient::new(channel);
    let token = args.token.clone();
    let failed = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    match args.command {
        ApiKeyCommand::Create {
            name,
            scopes,
            kinds,
        } => {
            let r = client
                .create_api_key(with_token(
                    token.as_deref(),
                    pb::CreateApiKeyRequest {
                        name,
                        scopes,
                        kinds,
                    },
                ))
                .await
                .map_err(failed)?
                .into_inner();
            print_created(&r.key, r.api_key.as_ref());
        }
        ApiKeyCommand::List => {
            let r = client
                .list_api_keys(with_token(token.as_deref(), pb::ListApiKeysRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            print_list(&r.api_keys);
        }
        ApiKeyCommand::Revoke { id } => {
            client
                .revoke_api_key(with_token(
                    token.as_deref(),
                    pb::RevokeApiKeyRequest { id: id.clone() },
                ))
                .await
                .map_err(failed)?;
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

/// A request carrying `token` as `authorization: Bearer …`.
fn with_token<T>(token: Option<&str>, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(Ok(v)) = token.map(|t| format!("Bearer {}", t.trim()).parse()) {
        req.metadata_mut().insert("authorization", v);
    }
    req
}

async fn direct(keys: Arc<pfc_access::ApiKeys>, command: ApiKeyCommand) -> anyhow::Result<()> {
    let svc = pfc_access::ApiKeyGrpc::new(keys);
    use pfc_proto::jobs::v1::api_key_service_server::ApiKeyService as _;
    let failed = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    match command {
        ApiKeyCommand::Create {
            name,
            scopes,
            kinds,
        } => {
            let r = svc
                .create_api_key(tonic::Request::new(pb::CreateApiKeyRequest {
                    name,
                    scopes,
                    kinds,
                }))
                .await
                .map_err(failed)?
                .into_inner();
            print_created(&r.key, r.api_key.as_ref());
        }
        ApiKeyCommand::List => {
            let r = svc
                .list_api_keys(tonic::Request::new(pb::ListApiKeysRequest {}))
                .await
                .map_err(failed)?
                .into_inner();
            print_list(&r.api_keys);
        }
        ApiKeyCommand::Revoke { id } => {
            svc.revoke_api_key(tonic::Request::new(pb::RevokeApiKeyRequest {
                id: id.clone(),
            }))
            .await
            .map_err(failed)?;
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

/// The key alone on stdout (`KEY=$(pfc apikey create …)`), what it is on stderr.
fn print_created(key: &str, info: Option<&pb::ApiKey>) {
    println!("{key}");
    if let Some(k) = info {
        eprintln!(
            "created API key {} ({}) with scopes {}{}: it is shown only now, store it safely",
            k.id,
            k.name,
            k.scopes.join(" "),
            if k.kinds.is_empty() {
                String::new()
            } else {
                format!(", kinds {}", k.kinds.join(","))
            }
        );
    }
}

fn ts(t: Option<&prost_types::Timestamp>) -> String {
    t.map(|t| {
        let ms = pfc_proto::timestamp_to_ms(t);
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
        )
        .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

fn print_list(keys: &[pb::ApiKey]) {
    println!(
        "{:<16}  {:<16}  {:<28}  {:<12}  {:<20}  REVOKED",
        "ID", "NAME", "SCOPES", "KINDS", "CREATED"
    );
    for k in keys {
        println!(
            "{:<16}  {:<16}  {:<28}  {:<12}  {:<20}  {}",
            k.id,
            k.name,
            k.scopes.join(" "),
            if k.kinds.is_empty() {
                "*".to_string()
            } else {
                k.kinds.join(",")
            },
            ts(k.created_at.as_ref()),
            ts(k.revoked_at.as_ref())
        );
    }
}
