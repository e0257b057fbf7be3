//! Where actors run: an actix `System` on its own OS thread with a few `Arbiter`s (each a thread
//! with a current-thread runtime). The API runs on the normal multi-thread tokio runtime and talks
//! to actors through handles, which is runtime-independent.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Context, System};

/// Stack size of actor threads: SurrealDB's parser and executor recommend 10 MiB.
const ACTOR_THREAD_STACK: usize = 10 << 20;

/// The actor threads. Cloning shares them; [`ActorRuntime::shutdown`] stops them.
#[derive(Clone)]
pub struct ActorRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    arbiters: Vec<ArbiterHandle>,
    system: System,
    next: AtomicUsize,
}

impl std::fmt::Debug for ActorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorRuntime").field("arbiters", &self.inner.arbiters.len()).finish()
    }
}

/// The actor runtime could not start.
#[derive(Debug, thiserror::Error)]
#[error("actor runtime failed to start: {0}")]
pub struct RuntimeError(String);

impl ActorRuntime {
    /// Starts the actix system with `arbiters` worker threads (at least one).
    pub fn start(arbiters: usize) -> Result<Self, RuntimeError> {
        let (tx, rx) = mpsc::channel();
        let arbiters = arbiters.max(1);
        thread::Builder::new()
            .name("actix-system".into())
            .stack_size(ACTOR_THREAD_STACK)
            .spawn(move || {
                let system = System::new();
                let handles: Vec<(Arbiter, ArbiterHandle)> = (0..arbiters)
                    .map(|_| {
                        let arbiter = Arbiter::with_tokio_rt(|| {
                            tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .thread_stack_size(ACTOR_THREAD_STACK)
                                .build()
                                .expect("a current-thread runtime builds with default settings")
                        });
                        let handle = arbiter.handle();
                        (arbiter, handle)
                    })
                    .collect();
                let _ = tx.send((
                    System::current(),
                    handles.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>(),
                ));
                system.run().ok();
                drop(handles);
            })
            .map_err(|e| RuntimeError(e.to_string()))?;
        let (system, arbiters) = rx.recv().map_err(|e| RuntimeError(e.to_string()))?;
        Ok(Self { inner: Arc::new(Inner { arbiters, system, next: AtomicUsize::new(0) }) })
    }

    /// Starts an actor on the next arbiter (round robin).
    pub(crate) fn spawn<A, F>(&self, make: F) -> Addr<A>
    where
        A: Actor<Context = Context<A>>,
        F: FnOnce(&mut Context<A>) -> A + Send + 'static,
    {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.arbiters.len();
        A::start_in_arbiter(&self.inner.arbiters[i], make)
    }

    /// Stops every arbiter and the system.
    pub fn shutdown(&self) {
        for a in &self.inner.arbiters {
            a.stop();
        }
        self.inner.system.stop();
    }
}
