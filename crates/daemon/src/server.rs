//! The control socket: one thread accepts, one thread per client reads frames and hands
//! each request to the engine thread, which owns the core.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc;

use rvs_api as api;

/// Work for the engine thread, which alone owns the core.
pub(crate) enum Job {
    /// A control request, with where to send the answer.
    Api {
        req: api::Request,
        may_admin: bool,
        reply: mpsc::SyncSender<api::Response>,
    },
    /// A metrics scrape: the engine renders the exposition text.
    Metrics { reply: mpsc::SyncSender<String> },
}

/// Accept clients forever.
pub(crate) fn serve(listener: UnixListener, jobs: mpsc::Sender<Job>) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let jobs = jobs.clone();
                let spawned = std::thread::Builder::new()
                    .name("rvsd-client".into())
                    .spawn(move || client(stream, jobs));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start a client thread");
                }
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

fn client(mut stream: UnixStream, jobs: mpsc::Sender<Job>) {
    let may_admin = match rvs_io::creds::peer_cred(&stream) {
        Ok(c) => rvs_io::creds::may_administer(&c),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; read-only");
            false
        }
    };
    let result = api::serve_connection(&mut stream, |req| {
        let (tx, rx) = mpsc::sync_channel(1);
        if jobs
            .send(Job::Api {
                req,
                may_admin,
                reply: tx,
            })
            .is_err()
        {
            return api::Response::error(api::ErrorCode::Internal, "rvsd is shutting down");
        }
        rx.recv().unwrap_or_else(|_| {
            api::Response::error(api::ErrorCode::Internal, "rvsd engine stopped")
        })
    });
    if let Err(e) = result {
        tracing::debug!(error = %e, "client connection ended");
    }
}
