//! Live config: the demo follows its `--config` files while traffic flows.
//!
//! A task polls the files every [`POLL_INTERVAL`] and compares a hash of their contents (not
//! their modification times, which editors and ConfigMap mounts do not keep reliably) with
//! the last one seen. On a change it rebuilds every workload's config (its mesh document, then
//! the files' documents) and applies it to both sides of the workload, as Istio pushes an
//! edited document to every sidecar without restarting a pod:
//!
//! - the server's policy ([`ServerPolicy::reload`]): the AuthorizationPolicy documents that
//!   select the workload, its RequestAuthentication JWT rules and its PeerAuthentication mTLS
//!   mode (the gateway stays plaintext, as at the start). Requests arriving from then on are
//!   decided by the new policies and connections accepted from then on get the new mode;
//!   requests in flight and open connections finish as they started. A `jwksUri` named again
//!   keeps its fetched keys. The server's limits stay those of the start.
//! - the client ([`MeshClient::reload`]): routes, subsets and traffic policies apply to the
//!   next request, requests in flight finish on the old ones, and each client's destinations
//!   and connection pools are rebuilt on first use.
//!
//! A file that cannot be read, parsed or validated is reported with its name and the reason,
//! and every workload keeps its old config; the same contents are not reported again. The
//! servers are reloaded before the clients, each checking everything before it swaps; should
//! one still refuse its policy, the servers already reloaded are put back, so the demo never
//! runs half of a change.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use mesh::MeshClient;
use mesh::core::config::ServerConfig;
use mesh::tower::server::ServerPolicy;
use tokio::sync::watch;

use super::network::Workload;
use super::{DemoError, workload};

/// How often the `--config` files are read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The files' documents, as one YAML text, and a hash of what was read (contents, or the
/// error of a file that could not be read).
pub(super) fn snapshot(files: &[PathBuf]) -> (u64, Result<String, DemoError>) {
    let mut hasher = DefaultHasher::new();
    let mut documents = Ok(String::new());
    for path in files {
        match workload::read_documents(path) {
            Ok(text) => {
                text.hash(&mut hasher);
                if let Ok(documents) = &mut documents {
                    documents.push_str(&text);
                    documents.push_str("\n---\n");
                }
            }
            Err(error) => {
                error.to_string().hash(&mut hasher);
                if documents.is_ok() {
                    documents = Err(error);
                }
            }
        }
    }
    (hasher.finish(), documents)
}

/// What follows the files in one workload: its client and its server's policy.
#[derive(Debug)]
pub(super) struct Live {
    /// The workload.
    pub(super) workload: Workload,
    /// Its client.
    pub(super) client: MeshClient,
    /// Its server's policy.
    pub(super) policy: ServerPolicy,
}

/// The workloads of a demo and what their configs are built from.
#[derive(Debug)]
pub(super) struct Reloader {
    files: Vec<PathBuf>,
    dns: SocketAddr,
    workloads: Vec<Live>,
    /// The hash of the contents last applied or refused.
    last: Mutex<u64>,
}

impl Reloader {
    /// Follows `files`, whose contents at the start hashed to `hash`.
    pub(super) fn new(
        files: Vec<PathBuf>,
        dns: SocketAddr,
        workloads: Vec<Live>,
        hash: u64,
    ) -> Self {
        Self {
            files,
            dns,
            workloads,
            last: Mutex::new(hash),
        }
    }

    /// Whether there are files to follow.
    pub(super) fn follows_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// Reads the files and, when their contents changed, applies them to every server
    /// policy and client: `Ok(true)` when applied, `Ok(false)` when unchanged (or refused
    /// before), an error naming the file (or the workload and the field) when they cannot be
    /// used (every workload keeps its config).
    pub(super) fn check(&self) -> Result<bool, DemoError> {
        let (hash, documents) = snapshot(&self.files);
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if *last == hash {
                return Ok(false);
            }
            *last = hash;
        }
        let documents = documents?;
        // Every config first, so that a bad file changes no workload.
        let mut configs = Vec::with_capacity(self.workloads.len());
        for live in &self.workloads {
            match workload::config(live.workload, self.dns, &documents) {
                Ok(config) => configs.push(config),
                Err(error) => return Err(self.blame(live.workload, error)),
            }
        }
        self.reload_servers(&configs)?;
        for (live, config) in self.workloads.iter().zip(configs) {
            live.client
                .reload(config)
                .map_err(|e| DemoError::Client(format!("{}: {e}", live.workload.pod_name())))?;
        }
        Ok(true)
    }

    /// Reloads every server's policy from `configs`; when one refuses, the ones reloaded
    /// before it get their policy back and the error names the workload and the field.
    fn reload_servers(&self, configs: &[mesh::MeshConfig]) -> Result<(), DemoError> {
        let mut done: Vec<(&ServerPolicy, ServerConfig)> = Vec::new();
        for (live, config) in self.workloads.iter().zip(configs) {
            let before = ServerConfig {
                security: live.policy.security(),
                ..ServerConfig::default()
            };
            if let Err(error) = live
                .policy
                .reload(&workload::inbound(live.workload, config))
            {
                for (policy, before) in done.iter().rev() {
                    if let Err(e) = policy.reload(before) {
                        tracing::warn!(error = %e, "server policy not put back");
                    }
                }
                return Err(DemoError::Server(format!(
                    "{}: {error}",
                    live.workload.pod_name()
                )));
            }
            done.push((&live.policy, before));
        }
        Ok(())
    }

    /// The file whose documents alone make `workload`'s config fail, named in `error`; the
    /// error as it is when no one file does.
    fn blame(&self, w: Workload, error: DemoError) -> DemoError {
        for path in &self.files {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            if let Err(DemoError::Config(source)) = workload::config(w, self.dns, &text) {
                return DemoError::ConfigFile {
                    path: path.clone(),
                    source,
                };
            }
        }
        error
    }
}

/// Polls `reloader`'s files every [`POLL_INTERVAL`] until `stopped`, reporting each change
/// applied or refused.
pub(super) async fn follow(reloader: std::sync::Arc<Reloader>, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
        match reloader.check() {
            Ok(true) => {
                tracing::info!(files = ?reloader.files, "config reloaded");
                println!("bookinfo: config reloaded");
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "config not reloaded; the old config stays");
                eprintln!("bookinfo: config not reloaded, the old config stays: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_poll_reads_a_changed_file_within_an_interval() {
        let dir = std::env::temp_dir().join(format!("bookinfo-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("routes.yaml");
        std::fs::write(&file, "# all v1\n").unwrap();
        let files = vec![file.clone()];
        let (hash, documents) = snapshot(&files);
        assert_eq!(documents.unwrap(), "# all v1\n\n---\n");
        let dns = "127.0.0.1:53".parse().unwrap();
        let reloader = Arc::new(Reloader::new(files, dns, Vec::new(), hash));
        assert!(!reloader.check().unwrap(), "unchanged");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(follow(reloader.clone(), stopped));

        std::fs::write(&file, "# test v2\n").unwrap();
        tokio::time::sleep(POLL_INTERVAL + Duration::from_millis(1)).await;
        // The poll has taken the change already.
        assert!(!reloader.check().unwrap());
        std::fs::write(&file, "# all v1 again\n").unwrap();
        assert!(reloader.check().unwrap(), "a change not yet polled");

        stop.send(true).unwrap();
        task.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
