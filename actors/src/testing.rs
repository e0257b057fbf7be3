//! Helpers of this crate's tests.

/// Runs a test body on a multi-thread runtime with the stack SurrealDB needs.
pub(crate) fn run<F: std::future::Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(10 << 20)
        .enable_all()
        .build()
        .expect("a test runtime builds")
        .block_on(f);
}
