//! Backends waiting in `workflow_claim_wait` for work on a queue (README: Workers), and
//! waking them one at a time.
//!
//! A waiter registers its queue here before each claim attempt and sleeps on its latch
//! when the attempt found nothing. A transaction that made work claimable wakes one
//! waiter of that queue when it commits (`wake::publish`), and so does a dispatcher that
//! announces a queue (a retry whose backoff ended). A waiter that claimed as many as it
//! asked for wakes the next one, since more may be left. So each commit sets one latch,
//! where a NOTIFY reaches every listener of the cluster and each of them claims.
//!
//! Registering before the attempt is what makes a wake-up impossible to lose: a commit
//! before the attempt's snapshot is seen by the attempt, and a commit after it finds the
//! waiter registered (and not yet woken) and sets its latch, so the sleep returns at once.
//!
//! Without the preload there is no shared memory: `workflow_claim_wait` then tries again
//! every `POLL_MS`.

use pgrx::atomics::PgAtomic;
use pgrx::lwlock::PgLwLock;
use pgrx::pg_guard;
use pgrx::pg_sys;
use pgrx::shmem::PGRXSharedMemory;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Waiters at once in the cluster; one more waits by polling.
pub const MAX_WAITERS: usize = 256;
/// How often a waiter without a registration (no preload, or the table full) tries again.
pub const POLL_MS: i64 = 50;
/// The bytes of a queue's name a waiter is known by (as in the wake-up mailbox).
const QUEUE_LEN: usize = 63;

#[derive(Copy, Clone)]
#[repr(C)]
struct Waiter {
    /// 0: a free entry.
    pid: i32,
    db: u32,
    /// Its latch was set for work and it has not tried to claim since.
    woken: bool,
    /// When it registered (a counter): the longest waiting is woken first.
    since: u64,
    queue_len: u8,
    queue: [u8; QUEUE_LEN],
}

impl Waiter {
    const FREE: Waiter = Waiter { pid: 0, db: 0, woken: false, since: 0, queue_len: 0, queue: [0; QUEUE_LEN] };

    fn waits_for(&self, db: u32, queue: &[u8]) -> bool {
        self.pid != 0 && self.db == db && &self.queue[..self.queue_len as usize] == queue
    }
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct Waiters {
    next_since: u64,
    entries: [Waiter; MAX_WAITERS],
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters { next_since: 0, entries: [Waiter::FREE; MAX_WAITERS] }
    }
}

unsafe impl PGRXSharedMemory for Waiters {}

static WAITERS: PgLwLock<Waiters> = unsafe { PgLwLock::new(c"pg_workflow_waiters") };
/// How many entries are taken: a commit with no waiter anywhere takes no lock.
static REGISTERED: PgAtomic<AtomicU32> = unsafe { PgAtomic::new(c"pg_workflow_waiting") };

/// True once shared memory was set up by the preload.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init` while preloading.
pub fn init() {
    pgrx::pg_shmem_init!(WAITERS);
    pgrx::pg_shmem_init!(REGISTERED = AtomicU32::new(0));
    ENABLED.store(true, Ordering::Relaxed);
}

fn nobody_waits() -> bool {
    !ENABLED.load(Ordering::Relaxed) || REGISTERED.get().load(Ordering::Acquire) == 0
}

/// Queue names are kept as the mailbox keeps them: the first `QUEUE_LEN` bytes.
fn key(queue: &str) -> &[u8] {
    let bytes = queue.as_bytes();
    &bytes[..bytes.len().min(QUEUE_LEN)]
}

fn my_pid() -> i32 {
    unsafe { pg_sys::MyProcPid }
}

/// This backend's entry while it waits; the entry is freed when this is dropped (also
/// when an ERROR, a cancel or `statement_timeout`, unwinds through the wait).
pub struct Registration {
    index: usize,
}

/// Registers this backend as waiting for `queue` of its database; `None` without the
/// preload or with every entry taken.
pub fn register(queue: &str) -> Option<Registration> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let (db, pid, queue) = (unsafe { pg_sys::MyDatabaseId.to_u32() }, my_pid(), key(queue));
    if !EXIT_HOOKED.with(|h| h.replace(true)) {
        // A backend that exits while it waits (a terminate is a FATAL, which does not
        // unwind) must not leave an entry that would take a wake-up meant for another.
        unsafe { pg_sys::before_shmem_exit(Some(forget_this_backend), pg_sys::Datum::from(0)) };
    }
    let mut w = WAITERS.exclusive();
    let index = w.entries.iter().position(|e| e.pid == 0)?;
    let since = w.next_since;
    w.next_since += 1;
    let mut entry = Waiter { pid, db, woken: false, since, queue_len: queue.len() as u8, ..Waiter::FREE };
    entry.queue[..queue.len()].copy_from_slice(queue);
    w.entries[index] = entry;
    REGISTERED.get().fetch_add(1, Ordering::AcqRel);
    Some(Registration { index })
}

thread_local! {
    static EXIT_HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe extern "C-unwind" fn forget_this_backend(_code: i32, _arg: pg_sys::Datum) {
    let pid = my_pid();
    let mut w = WAITERS.exclusive();
    for entry in w.entries.iter_mut().filter(|e| e.pid == pid) {
        *entry = Waiter::FREE;
        REGISTERED.get().fetch_sub(1, Ordering::AcqRel);
    }
}

impl Registration {
    /// Before each attempt: wakes set from now on are for the attempt to come.
    pub fn rearm(&self) {
        WAITERS.exclusive().entries[self.index].woken = false;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut w = WAITERS.exclusive();
        if w.entries[self.index].pid == my_pid() {
            w.entries[self.index] = Waiter::FREE;
            REGISTERED.get().fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wakes the longest-waiting backend of database `db` waiting for `queue` that has not
/// been woken since it last tried; returns whether there was one.
pub fn wake_one(db: u32, queue: &str) -> bool {
    if nobody_waits() {
        return false;
    }
    let queue = key(queue);
    let pid = {
        let mut w = WAITERS.exclusive();
        let Some(entry) = w.entries.iter_mut().filter(|e| e.waits_for(db, queue) && !e.woken).min_by_key(|e| e.since)
        else {
            return false;
        };
        entry.woken = true;
        entry.pid
    };
    set_latch_of(pid);
    true
}

/// Wakes every backend of database `db` waiting for any queue (the mailbox overflowed:
/// which queues have work is not known).
pub fn wake_all(db: u32) {
    if nobody_waits() {
        return;
    }
    let pids: Vec<i32> = {
        let mut w = WAITERS.exclusive();
        w.entries
            .iter_mut()
            .filter(|e| e.pid != 0 && e.db == db)
            .map(|e| {
                e.woken = true;
                e.pid
            })
            .collect()
    };
    pids.into_iter().for_each(set_latch_of);
}

/// Sets the latch of the process with this pid, if it is alive (a waiter here; a
/// dispatcher or the launcher for `wake`).
pub fn set_latch_of(pid: i32) {
    unsafe {
        let proc_ = pg_sys::BackendPidGetProc(pid);
        if !proc_.is_null() {
            pg_sys::SetLatch(&raw mut (*proc_).procLatch);
        }
    }
}

/// Sleeps until this backend's latch is set or `timeout_ms` passes, then resets the
/// latch and serves interrupts (a cancel, `statement_timeout`, a terminate: an ERROR).
/// Returns whether the latch was set (by a wake-up, or by Postgres for its own reasons).
pub fn sleep(timeout_ms: i64) -> bool {
    let events = unsafe {
        let events = pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            timeout_ms.max(0),
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
        events
    };
    pgrx::check_for_interrupts!();
    events & pg_sys::WL_LATCH_SET as i32 != 0
}
