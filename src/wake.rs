//! Shared-memory wake-ups between backends and dispatchers (architecture: Processes and
//! the wake-up path).
//!
//! A transaction that creates work notes what it did (`post`); at commit, and only then,
//! the notes go into a small shared mailbox and the database's dispatcher latch is set.
//! The dispatcher drains the mailbox and sends the coalesced NOTIFYs, so no hot-path
//! transaction ever takes the cluster-wide NOTIFY lock.
//!
//! Without the preload there is no shared memory and no dispatcher: the transaction sends
//! its own notifications instead, just before it commits (one per channel and payload),
//! so LISTENing workers still hear of new work; what only time makes due (a retry's
//! backoff, a timer) is announced by the next `workflow_dispatch()`.
//!
//! The quiet path (preloaded): the relay costs a hop, about a third of a millisecond of
//! pickup on an idle system. So a transaction with something to announce now sends it
//! itself when no transaction in the cluster has done so for
//! `workflow.quiet_notify_interval` (10 ms), and no dispatcher has either: one shared
//! timestamp, taken by compare-and-swap just before commit, and moved by every relay. On
//! an idle system such a transaction is the first in its interval; under load the
//! dispatcher relays more often than that, so transactions leave it to the dispatcher as
//! before (and at most one per interval could take the NOTIFY lock).

use crate::gucs;
use crate::waiters::set_latch_of;
use pgrx::atomics::PgAtomic;
use pgrx::lwlock::PgLwLock;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::shmem::PGRXSharedMemory;
use pgrx::{register_xact_callback, PgXactCallbackEvent};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub const MAX_DATABASES: usize = 64;
pub const CAPACITY: usize = 1024;
pub const QUEUE_LEN: usize = 63;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Empty = 0,
    /// Claimable work in a queue, now or at `due_at` (a retry).
    QueueReady = 1,
    ExecutionFinished = 2,
    ExecutionReady = 3,
}

#[derive(Copy, Clone)]
#[repr(C)]
pub struct Event {
    pub db: u32,
    pub kind: Kind,
    queue_len: u8,
    queue: [u8; QUEUE_LEN],
    pub id: [u8; 16],
    /// Microseconds since the Postgres epoch; 0 = now.
    pub due_at: i64,
}

impl Event {
    const EMPTY: Event =
        Event { db: 0, kind: Kind::Empty, queue_len: 0, queue: [0; QUEUE_LEN], id: [0; 16], due_at: 0 };

    pub fn queue(&self) -> &str {
        std::str::from_utf8(&self.queue[..self.queue_len as usize]).unwrap_or("default")
    }
}

/// A database's dispatcher. A slot is taken by a dispatcher when it starts and given
/// back when it exits (`db` = 0), so slots are reused however many databases come and go.
/// The one exception: a dispatcher that found no extension leaves `db` and `no_extension`
/// set for the launcher, which reads that and frees the slot.
#[derive(Copy, Clone)]
#[repr(C)]
pub struct Slot {
    pub db: u32,
    pub pid: i32,
    /// The dispatcher found no extension in its database and exited.
    pub no_extension: bool,
    /// Events were dropped because the mailbox was full: scan the tables instead.
    pub overflowed: bool,
    /// A transaction changed timers (a sleep, a deadline, a delayed start, an sql step):
    /// the dispatcher must run a pass, not just send notifications.
    pub timers_changed: bool,
}

impl Slot {
    const EMPTY: Slot = Slot { db: 0, pid: 0, no_extension: false, overflowed: false, timers_changed: false };
}

/// A database that a statement needs to itself (DROP DATABASE, a CREATE DATABASE copying
/// it, renaming it, moving it): dispatchers leave it and are not started there until
/// `until` (a Postgres timestamp), or until the statement ends and releases it.
#[derive(Copy, Clone)]
#[repr(C)]
pub struct Hold {
    pub db: u32,
    pub until: i64,
}

impl Hold {
    const EMPTY: Hold = Hold { db: 0, until: 0 };
}

pub const MAX_HOLDS: usize = 16;

#[derive(Copy, Clone)]
#[repr(C)]
pub struct Mailbox {
    pub launcher_pid: i32,
    /// Set by CREATE EXTENSION (at commit): the launcher probes databases now.
    pub probe_requested: bool,
    pub slots: [Slot; MAX_DATABASES],
    pub holds: [Hold; MAX_HOLDS],
    pub len: u32,
    pub events: [Event; CAPACITY],
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            launcher_pid: 0,
            probe_requested: false,
            slots: [Slot::EMPTY; MAX_DATABASES],
            holds: [Hold::EMPTY; MAX_HOLDS],
            len: 0,
            events: [Event::EMPTY; CAPACITY],
        }
    }
}

impl Mailbox {
    /// Removes the events of database `db` and returns them, in order.
    fn take_events(&mut self, db: u32) -> Vec<Event> {
        let mut taken = Vec::new();
        let mut kept = 0usize;
        for i in 0..self.len as usize {
            let e = self.events[i];
            if e.db == db {
                taken.push(e);
            } else {
                self.events[kept] = e;
                kept += 1;
            }
        }
        self.len = kept as u32;
        taken
    }

    /// True while a statement needs database `db` to itself (`now`: a Postgres timestamp).
    fn is_held(&self, db: u32, now: i64) -> bool {
        self.holds.iter().any(|h| h.db == db && h.until > now)
    }
}

unsafe impl PGRXSharedMemory for Mailbox {}

pub static MAILBOX: PgLwLock<Mailbox> = unsafe { PgLwLock::new(c"pg_workflow_mailbox") };

/// When pg_workflow last sent notifications, from a transaction (the quiet path) or a
/// dispatcher, in Postgres microseconds. One for the cluster, because the NOTIFY lock is
/// one for the cluster.
static LAST_NOTIFY: PgAtomic<AtomicI64> = unsafe { PgAtomic::new(c"pg_workflow_last_notify") };

/// True once shared memory was set up by the preload.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Called from `_PG_init` while preloading.
pub fn init() {
    pgrx::pg_shmem_init!(MAILBOX);
    pgrx::pg_shmem_init!(LAST_NOTIFY = AtomicI64::new(0));
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What this transaction will announce if it commits.
#[derive(Default)]
struct Pending {
    registered: bool,
    timers: bool,
    events: Vec<Event>,
    /// Queues with work claimable now, for the waiters (the quiet path may send their
    /// events itself before commit; the waiters are woken at commit all the same).
    ready_queues: Vec<String>,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

fn my_database() -> u32 {
    unsafe { pg_sys::MyDatabaseId.to_u32() }
}

fn ensure_registered(p: &mut Pending) {
    if p.registered {
        return;
    }
    p.registered = true;
    if enabled() {
        register_xact_callback(PgXactCallbackEvent::PreCommit, notify_if_quiet);
        register_xact_callback(PgXactCallbackEvent::Commit, publish);
    } else {
        register_xact_callback(PgXactCallbackEvent::PreCommit, notify_before_commit);
    }
    register_xact_callback(PgXactCallbackEvent::Abort, forget_pending);
    register_xact_callback(PgXactCallbackEvent::PrePrepare, forget_pending);
}

fn forget_pending() {
    PENDING.with(|p| *p.borrow_mut() = Pending::default());
}

/// Notes, for this transaction's commit, that the dispatcher must be woken (or, without
/// the preload, what to notify); `note` adds what it should know.
fn at_commit(note: impl FnOnce(&mut Pending)) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        ensure_registered(&mut p);
        note(&mut p);
    });
}

/// Wakes the dispatcher at commit for a pass: new timers, new sql steps, ... Without the
/// preload there is no dispatcher to wake: whatever calls `workflow_dispatch()` runs them.
pub fn wake_at_commit() {
    if enabled() {
        at_commit(|p| p.timers = true);
    }
}

fn post(kind: Kind, queue: &str, id: [u8; 16], due_at: i64) {
    at_commit(|p| {
        // Coalesce: one QueueReady per queue and due time per transaction.
        if kind == Kind::QueueReady && due_at == 0 && !p.ready_queues.iter().any(|q| q == queue) {
            p.ready_queues.push(queue.to_owned());
        }
        if kind == Kind::QueueReady
            && p.events.iter().any(|e| e.kind == kind && e.queue() == queue && e.due_at == due_at)
        {
            return;
        }
        let mut e = Event { db: my_database(), kind, id, due_at, ..Event::EMPTY };
        let bytes = queue.as_bytes();
        let n = bytes.len().min(QUEUE_LEN);
        e.queue[..n].copy_from_slice(&bytes[..n]);
        e.queue_len = n as u8;
        p.events.push(e);
    });
}

pub fn queue_ready(queue: &str, due_at: i64) {
    post(Kind::QueueReady, queue, [0; 16], due_at);
}

pub fn execution_finished(id: &pgrx::Uuid) {
    post(Kind::ExecutionFinished, "", *id.as_bytes(), 0);
}

pub fn execution_ready(id: &pgrx::Uuid) {
    post(Kind::ExecutionReady, "", *id.as_bytes(), 0);
}

/// `execution_ready` when a retry falls due at `due_at` (a Postgres timestamp).
pub fn execution_ready_at(id: &pgrx::Uuid, due_at: i64) {
    post(Kind::ExecutionReady, "", *id.as_bytes(), due_at);
}

/// The channel and payload an event is announced with (when it is due: `due_at`).
pub fn announcement(e: &Event) -> Option<(&'static str, String)> {
    match e.kind {
        Kind::QueueReady => Some(("workflow_activity_ready", e.queue().to_owned())),
        Kind::ExecutionFinished => Some(("workflow_execution_finished", uuid_text(&e.id))),
        Kind::ExecutionReady => Some(("workflow_execution_ready", uuid_text(&e.id))),
        Kind::Empty => None,
    }
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    uuid::Uuid::from_bytes(*bytes).to_string()
}

/// Pre-commit callback without the preload: this transaction notifies what it made
/// ready itself (Postgres sends the notifications when, and only if, it commits); what
/// falls due later is announced by `workflow_dispatch()`.
fn notify_before_commit() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    notify_due(&pending.events, now());
}

/// NOTIFYs, in this transaction, what of `events` is due at `now`: once per channel and
/// payload.
fn notify_due(events: &[Event], now: i64) {
    let mut sent: Vec<(&'static str, String)> = Vec::new();
    for e in events.iter().filter(|e| e.due_at <= now) {
        if let Some(n) = announcement(e) {
            if !sent.contains(&n) {
                notify(n.0, &n.1);
                sent.push(n);
            }
        }
    }
}

/// Pre-commit callback with the preload (the quiet path, see the module's comment): if
/// nothing was notified for the interval, this transaction sends what is due now itself
/// and leaves only what falls due later (and any timers) to the dispatcher.
fn notify_if_quiet() {
    let interval = gucs::quiet_notify_interval_us();
    if interval == 0 {
        return;
    }
    let now = now();
    if !PENDING.with(|p| p.borrow().events.iter().any(|e| e.due_at <= now)) {
        return;
    }
    let last = LAST_NOTIFY.get();
    let previous = last.load(Ordering::Acquire);
    if now - previous < interval || last.compare_exchange(previous, now, Ordering::AcqRel, Ordering::Acquire).is_err() {
        return; // not quiet, or another transaction took this interval
    }
    let due = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let (due, later) = std::mem::take(&mut p.events).into_iter().partition(|e| e.due_at <= now);
        p.events = later;
        due
    });
    notify_due(&due, now);
}

/// For a dispatcher that just relayed notifications: the cluster is not quiet.
pub fn relayed_notifications() {
    if enabled() {
        LAST_NOTIFY.get().fetch_max(now(), Ordering::AcqRel);
    }
}

/// NOTIFY `channel`, `payload`, in this transaction.
pub fn notify(channel: &str, payload: &str) {
    unsafe {
        pgrx::direct_function_call::<()>(pg_sys::pg_notify, &[channel.into_datum(), payload.into_datum()]);
    }
}

/// Commit callback: wakes a backend waiting in `workflow_claim_wait` for each queue this
/// transaction made claimable now (src/waiters.rs), moves its events into shared memory
/// and wakes the database's dispatcher.
fn publish() {
    let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for queue in &pending.ready_queues {
        crate::waiters::wake_one(my_database(), queue);
    }
    // Nothing to hand over (or the quiet path sent it all): the dispatcher is not woken.
    if pending.events.is_empty() && !pending.timers {
        return;
    }
    let db = my_database();
    let mut target = 0;
    {
        let mut mb = MAILBOX.exclusive();
        for e in pending.events {
            if (mb.len as usize) < CAPACITY {
                let at = mb.len as usize;
                mb.events[at] = e;
                mb.len += 1;
            } else if let Some(slot) = mb.slots.iter_mut().find(|s| s.db == db) {
                slot.overflowed = true;
            }
        }
        if let Some(slot) = mb.slots.iter_mut().find(|s| s.db == db && s.pid != 0) {
            slot.timers_changed |= pending.timers;
            target = slot.pid;
        }
    }
    if target != 0 && target != unsafe { pg_sys::MyProcPid } {
        set_latch_of(target);
    }
}

/// Asks the launcher (at commit) to look for databases with the extension now.
pub fn request_probe_at_commit() {
    if !enabled() {
        return;
    }
    register_xact_callback(PgXactCallbackEvent::Commit, || {
        let launcher = {
            let mut mb = MAILBOX.exclusive();
            mb.probe_requested = true;
            mb.launcher_pid
        };
        if launcher != 0 {
            set_latch_of(launcher);
        }
    });
}

/// What a dispatcher takes from the mailbox.
pub struct Drained {
    pub events: Vec<Event>,
    /// Events were lost to a full mailbox.
    pub overflowed: bool,
    pub timers_changed: bool,
    /// A statement needs the database alone: the dispatcher must leave.
    pub held: bool,
}

/// Takes every event of database `db` (and says whether it is held, under the same lock).
pub fn drain(db: u32) -> Drained {
    let mut mb = MAILBOX.exclusive();
    let taken = mb.take_events(db);
    let (mut overflowed, mut timers_changed) = (false, false);
    if let Some(slot) = mb.slots.iter_mut().find(|s| s.db == db) {
        overflowed = std::mem::take(&mut slot.overflowed);
        timers_changed = std::mem::take(&mut slot.timers_changed);
    }
    let held = mb.is_held(db, now());
    Drained { events: taken, overflowed, timers_changed, held }
}

/// Takes a slot for the dispatcher of `db` (this process); false if all are in use.
pub fn take_slot(db: u32) -> bool {
    let mut mb = MAILBOX.exclusive();
    let index = mb.slots.iter().position(|s| s.db == db).or_else(|| mb.slots.iter().position(|s| s.db == 0));
    match index {
        Some(i) => {
            mb.slots[i] = Slot { db, pid: unsafe { pg_sys::MyProcPid }, ..Slot::EMPTY };
            true
        }
        None => false,
    }
}

/// Gives the slot of `db` back. With `no_extension`, the slot keeps saying so until the
/// launcher has read it (`take_exit_note`).
pub fn leave_slot(db: u32, no_extension: bool) {
    let mut mb = MAILBOX.exclusive();
    if let Some(slot) = mb.slots.iter_mut().find(|s| s.db == db) {
        *slot = if no_extension { Slot { db, no_extension: true, ..Slot::EMPTY } } else { Slot::EMPTY };
    }
}

/// For the launcher, once the dispatcher of `db` has exited: true if it exited because
/// the extension is not there. Frees a slot left behind for that note.
pub fn take_exit_note(db: u32) -> bool {
    let mut mb = MAILBOX.exclusive();
    match mb.slots.iter_mut().find(|s| s.db == db && s.pid == 0) {
        Some(slot) => {
            let idle = slot.no_extension;
            *slot = Slot::EMPTY;
            idle
        }
        None => false,
    }
}

/// For the launcher: forgets a database that no longer exists (or may no longer have a
/// dispatcher): its events, and a slot no process holds.
pub fn forget_database(db: u32) {
    let mut mb = MAILBOX.exclusive();
    mb.take_events(db);
    for slot in mb.slots.iter_mut().filter(|s| s.db == db && s.pid == 0) {
        *slot = Slot::EMPTY;
    }
}

fn now() -> i64 {
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Asks the dispatcher of `db` to leave, and the launcher not to start one there, for
/// `seconds` or until `release_database`. Wakes both, so they act at once.
pub fn hold_database(db: u32, seconds: i64) {
    if !enabled() {
        return;
    }
    let now = now();
    let until = now + seconds * 1_000_000;
    let (dispatcher, launcher) = {
        let mut mb = MAILBOX.exclusive();
        let index = mb
            .holds
            .iter()
            .position(|h| h.db == db)
            .or_else(|| mb.holds.iter().position(|h| h.db == 0 || h.until <= now));
        // With every hold taken (16 statements at once), this one goes without: the
        // statement then waits for the dispatcher as it would for any session.
        if let Some(i) = index {
            mb.holds[i] = Hold { db, until };
        }
        mb.probe_requested = true;
        (mb.slots.iter().find(|s| s.db == db).map_or(0, |s| s.pid), mb.launcher_pid)
    };
    for pid in [dispatcher, launcher] {
        if pid != 0 {
            set_latch_of(pid);
        }
    }
}

/// The transaction that needed database `db` alone is over: dispatchers may come back,
/// and the launcher lists databases again now.
pub fn release_database(db: u32) {
    if !enabled() {
        return;
    }
    let launcher = {
        let mut mb = MAILBOX.exclusive();
        for hold in mb.holds.iter_mut().filter(|h| h.db == db) {
            *hold = Hold::EMPTY;
        }
        mb.probe_requested = true;
        mb.launcher_pid
    };
    if launcher != 0 {
        set_latch_of(launcher);
    }
}

/// True if the launcher was asked to list databases again since it last did: what it
/// listed may be out of date (a database just dropped).
pub fn probe_pending() -> bool {
    MAILBOX.share().probe_requested
}

/// True while a statement needs database `db` to itself.
pub fn is_held(db: u32) -> bool {
    MAILBOX.share().is_held(db, now())
}
