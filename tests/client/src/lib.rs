//! Helpers for client-level tests: each test gets its own database with the extension
//! created, on the cluster named by PGWORKFLOW_TEST_URL (scripts/test.sh starts one).

use postgres::{Client, NoTls};

pub fn base_url() -> String {
    std::env::var("PGWORKFLOW_TEST_URL").expect("PGWORKFLOW_TEST_URL is not set; run these tests through `make test`")
}

/// The connection string (without dbname) of a cluster set up for some tests alone,
/// named by the environment variable `var` (scripts/test.sh sets it).
pub fn cluster_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set; run these tests through `make test`"))
}

/// A fresh database named `name` with pg_workflow created; returns its connection string.
pub fn fresh_database(name: &str) -> String {
    fresh_database_on(&base_url(), name)
}

/// `fresh_database` on the cluster at `base` (a connection string without dbname).
pub fn fresh_database_on(base: &str, name: &str) -> String {
    let url = empty_database_on(base, name);
    connect(&url).batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    url
}

/// A fresh database named `name`, without the extension; returns its connection string.
pub fn empty_database_on(base: &str, name: &str) -> String {
    let mut admin = Client::connect(&format!("{base} dbname=postgres"), NoTls).expect("connect to postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    format!("{base} dbname={name}")
}

/// Waits up to `timeout` for the next notification on a LISTENing connection, with the
/// pid of the backend that sent it.
pub fn next_notice(listener: &mut Client, timeout: std::time::Duration) -> Option<postgres::Notification> {
    use fallible_iterator::FallibleIterator;
    let mut notifications = listener.notifications();
    let mut it = notifications.timeout_iter(timeout);
    it.next().expect("read notifications")
}

/// Waits up to `timeout` for the next notification's channel and payload.
pub fn next_notification(listener: &mut Client, timeout: std::time::Duration) -> Option<(String, String)> {
    next_notice(listener, timeout).map(|n| (n.channel().to_owned(), n.payload().to_owned()))
}

/// Every notification the listener gets before a marker that `sender` sends now: as
/// notifications arrive in commit order, these are all that earlier transactions sent.
pub fn notices_before_marker(listener: &mut Client, sender: &mut Client) -> Vec<postgres::Notification> {
    listener.batch_execute("LISTEN pgw_test_marker").unwrap();
    sender.batch_execute("NOTIFY pgw_test_marker").unwrap();
    let mut seen = Vec::new();
    loop {
        match next_notice(listener, std::time::Duration::from_secs(30)) {
            Some(n) if n.channel() == "pgw_test_marker" => return seen,
            Some(n) => seen.push(n),
            None => panic!("the marker notification did not arrive within 30 s (seen: {seen:?})"),
        }
    }
}

/// The channel and payload of each of `notices_before_marker`.
pub fn notifications_before_marker(listener: &mut Client, sender: &mut Client) -> Vec<(String, String)> {
    notices_before_marker(listener, sender).iter().map(|n| (n.channel().to_owned(), n.payload().to_owned())).collect()
}

/// The test cluster's data directory (PGWORKFLOW_TEST_PGDATA), on this machine.
pub fn test_pgdata() -> String {
    std::env::var("PGWORKFLOW_TEST_PGDATA").expect("PGWORKFLOW_TEST_PGDATA is not set; run through `make test`")
}

/// Runs `scripts/cluster.sh ACTION` on the test cluster (PGWORKFLOW_TEST_PGDATA):
/// `restart` (fast shutdown, start) or `crash` (immediate shutdown, start).
pub fn cluster(action: &str) {
    let pgdata = test_pgdata();
    let status = std::process::Command::new("scripts/cluster.sh")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args([action, &pgdata])
        .status()
        .expect("run scripts/cluster.sh");
    assert!(status.success(), "scripts/cluster.sh {action} failed");
}

pub fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).expect("connect")
}

/// A small xorshift generator: deterministic per seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A fresh database on `base` (without the extension) in which `role`, a login role with
/// no other attribute (created if missing), has CREATE, as a managed provider's
/// application role would; returns the connection strings as the superuser and as `role`.
pub fn database_for_role(base: &str, name: &str, role: &str) -> (String, String) {
    let admin_url = empty_database_on(base, name);
    let mut admin = connect(&format!("{base} dbname=postgres"));
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE {role} LOGIN; END IF; END $$; \
             ALTER ROLE {role} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS; \
             GRANT CREATE ON DATABASE {name} TO {role}"
        ))
        .unwrap();
    (admin_url, format!("{base} dbname={name} user={role}"))
}

/// The SQLSTATE of a failed statement ("no error" if it succeeded).
pub fn sqlstate(result: Result<u64, postgres::Error>) -> String {
    match result {
        Ok(_) => "no error".to_owned(),
        Err(e) => e.code().map_or_else(|| e.to_string(), |c| c.code().to_owned()),
    }
}

/// Polls pg_stat_activity until backend `pid` sleeps in `workflow_claim_wait`'s wait
/// (its first attempts done), for at most 30 s.
pub fn wait_until_claim_waits(observer: &mut Client, pid: i32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let sleeping: bool = observer
            .query_one(
                "SELECT coalesce(bool_or(wait_event_type = 'Extension' AND query LIKE '%workflow_claim_wait%'), false) \
                 FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .unwrap()
            .get(0);
        if sleeping {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("backend {pid} never started waiting in workflow_claim_wait");
}
