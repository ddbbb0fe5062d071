//! Helpers for client-level tests: each test gets its own database with the extension
//! created, on the cluster named by PGWORKFLOW_TEST_URL (scripts/test.sh starts one).

use postgres::{Client, NoTls};

pub fn base_url() -> String {
    std::env::var("PGWORKFLOW_TEST_URL").expect("PGWORKFLOW_TEST_URL is not set; run these tests through `make test`")
}

/// A fresh database named `name` with pg_workflow created; returns its connection string.
pub fn fresh_database(name: &str) -> String {
    let mut admin = Client::connect(&format!("{} dbname=postgres", base_url()), NoTls).expect("connect to postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let url = format!("{} dbname={name}", base_url());
    connect(&url).batch_execute("CREATE EXTENSION pg_workflow").unwrap();
    url
}

/// Runs `scripts/cluster.sh ACTION` on the test cluster (PGWORKFLOW_TEST_PGDATA):
/// `restart` (fast shutdown, start) or `crash` (immediate shutdown, start).
pub fn cluster(action: &str) {
    let pgdata =
        std::env::var("PGWORKFLOW_TEST_PGDATA").expect("PGWORKFLOW_TEST_PGDATA is not set; run through `make test`");
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
