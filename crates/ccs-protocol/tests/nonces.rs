//! Thread nonces (`sync::thread_nonce`): the threads alive at once hold distinct nonces, and an
//! exited thread's nonce is handed out again, so a process whose threads come and go for months
//! never runs out of the 32,768. In a file of its own: the test counts every nonce the process
//! hands out.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use ccs_protocol::sync::thread_nonce;

#[test]
fn live_threads_hold_distinct_nonces_and_exited_ones_give_theirs_back() {
    // 64 threads alive at once: 64 distinct nonces.
    let barrier = Arc::new(Barrier::new(64));
    let live: Vec<u16> = (0..64)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let nonce = thread_nonce();
                // Each keeps its nonce until all have taken one.
                barrier.wait();
                assert_eq!(thread_nonce(), nonce, "a thread's nonce changed");
                nonce
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().expect("thread"))
        .collect();
    let distinct: HashSet<u16> = live.iter().copied().collect();
    assert_eq!(distinct.len(), 64, "live threads shared a nonce: {live:?}");
    assert!(
        live.iter().all(|&nonce| nonce < 1 << 15),
        "a nonce past 15 bits"
    );
    // 33,000 threads one after another (more than the 32,768 nonces): each takes a nonce the
    // exited ones gave back, so none goes past the 64 handed out above.
    for _ in 0..33_000 {
        let nonce = std::thread::spawn(thread_nonce).join().expect("thread");
        assert!(
            distinct.contains(&nonce),
            "nonce {nonce} is new: an exited thread's was not handed out again"
        );
    }
}
