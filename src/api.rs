//! The SQL API of the README: thin wrappers over the engine. Arguments are `Option` so
//! that a NULL gets a 22023 naming the argument (the README's NULL rule) instead of a
//! silent NULL result from a STRICT function; wrappers check the arguments whose NULL has
//! no meaning, in their order, and hand the rest to the engine.
//!
//! Every call goes through `call`: it notes the calling role, switches to the
//! extension's owner (callers get no rights on the tables themselves) and resolves the
//! tenant the caller acts for. The engine takes that `Caller` and finds another
//! tenant's execution or activity nowhere: the statement that locks (or reads) the row
//! says so, and the call answers P0002 as for a missing id.

use crate::engine::execution::ClientOutcome;
use crate::engine::privileges::{current_role, AsOwner};
use crate::engine::tenancy::{self, Caller};
use crate::engine::{
    activity, admission, claim, claim_wait, client_driven, cron_schedules, definitions, dispatch, execution, grants,
    graph, queues, replay, search, signal, stats, status,
};
use crate::error::{OrRaise, Result, WorkflowError};
use crate::jsonb_arg::JsonbArg;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, Spi, Uuid};
use serde_json::Value;

/// Runs one API call as the extension's owner, for the tenant of the calling role.
fn call<T>(body: impl FnOnce(&mut SpiClient<'_>, &Caller) -> Result<T>) -> T {
    let role = current_role();
    let _owner = AsOwner::enter().or_raise();
    Spi::connect_mut(|c| {
        let caller = tenancy::resolve(c, role)?;
        body(c, &caller)
    })
    .or_raise()
}

fn json(v: Option<JsonB>) -> Option<Value> {
    v.map(|j| j.0)
}

/// Reads an optional jsonb argument; unreadable JSON is a 22023 naming `field`.
fn json_arg(field: &str, v: Option<JsonbArg>) -> Result<Option<Value>> {
    v.map(|j| j.into_value(field)).transpose()
}

/// The rule for SQL NULL: an argument whose NULL the README does not give a meaning is
/// a 22023 that names it and says what to pass instead.
fn required<T>(field: &str, v: Option<T>, instead: &str) -> Result<T> {
    v.ok_or_else(|| WorkflowError::invalid(format!("{field} must not be NULL; {instead}")))
}

/// The id arguments, checked first so that errors name arguments in their order.
fn execution_id(id: Option<Uuid>) -> Result<Uuid> {
    required("execution_id", id, "pass the id workflow_start returned")
}

fn activity_id(id: Option<Uuid>) -> Result<Uuid> {
    required("activity_id", id, "pass the id workflow_claim returned")
}

/// A jsonb argument that must not be NULL (JSON `null` is a value, SQL NULL is not).
fn required_json(field: &str, v: Option<JsonbArg>, instead: &str) -> Result<Value> {
    required(field, json_arg(field, v)?, instead)
}

/// Stores a declared workflow; returns its version (the same one for an identical definition).
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_define(name: Option<&str>, definition: Option<JsonbArg>) -> i32 {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_define")?;
        let name = definitions::check_type_name("name", name)?;
        let definition = required_json("definition", definition, "pass a JSON object with \"steps\"")?;
        definitions::define(c, caller.role, &name, definition)
    })
}

/// Starts an execution; the same (workflow_type, idempotency_key) returns the existing id.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_start(
    workflow_type: Option<&str>,
    input: default!(Option<JsonbArg>, "'{}'"),
    idempotency_key: default!(Option<&str>, "NULL"),
    options: default!(Option<JsonbArg>, "'{}'"),
) -> Uuid {
    call(|c, caller| {
        let workflow_type = definitions::check_type_name("workflow_type", workflow_type)?;
        let input = required_json("input", input, "pass '{}' for no input")?;
        let options = required_json("options", options, "pass '{}' for no options")?;
        execution::start(c, caller, &workflow_type, input, idempotency_key, options)
    })
}

/// Claims up to max_count due activities of a queue (FOR UPDATE SKIP LOCKED).
// pgrx reads the result's column names from the `name!` types in this signature; a type
// alias would hide them from it.
#[allow(clippy::type_complexity)]
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_claim(
    queue: Option<&str>,
    worker_id: Option<&str>,
    max_count: default!(Option<i32>, 1),
    lease: default!(Option<Interval>, "'5 minutes'"),
    activity_types: default!(Option<Vec<Option<String>>>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(activity_id, Uuid),
        name!(execution_id, Uuid),
        name!(workflow_type, String),
        name!(step_key, String),
        name!(activity_type, Option<String>),
        name!(input, JsonB),
        name!(attempt, i32),
        name!(lease_expires_at, TimestampWithTimeZone),
    ),
> {
    let rows = call(|c, caller| {
        let (queue, worker_id, max_count, lease) = claim_args(queue, worker_id, max_count, lease)?;
        let at = pgrx::datum::now();
        claim::claim(c, caller, claim::Request { queue, worker_id, max_count, lease, activity_types, at })
    });
    claimed_table(rows)
}

/// The arguments `workflow_claim` and `workflow_claim_wait` share, none NULL.
fn claim_args<'a>(
    queue: Option<&'a str>,
    worker_id: Option<&'a str>,
    max_count: Option<i32>,
    lease: Option<Interval>,
) -> Result<(&'a str, &'a str, i32, Interval)> {
    Ok((
        required("queue", queue, "pass a queue name such as 'default'")?,
        required("worker_id", worker_id, "pass a name for this worker (host:pid)")?,
        required("max_count", max_count, "pass how many activities to claim at most, such as 1")?,
        required("lease", lease, "pass how long the claim holds, such as '5 minutes'")?,
    ))
}

/// `workflow_claim`, but when nothing is claimable it waits up to `timeout` for work on
/// the queue (woken by the commit that makes it claimable) instead of returning at once.
#[allow(clippy::type_complexity)] // the `name!` types must be spelled out: see workflow_claim
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_claim_wait(
    queue: Option<&str>,
    worker_id: Option<&str>,
    max_count: default!(Option<i32>, 1),
    lease: default!(Option<Interval>, "'5 minutes'"),
    activity_types: default!(Option<Vec<Option<String>>>, "NULL"),
    timeout: default!(Option<Interval>, "'1 second'"),
) -> TableIterator<
    'static,
    (
        name!(activity_id, Uuid),
        name!(execution_id, Uuid),
        name!(workflow_type, String),
        name!(step_key, String),
        name!(activity_type, Option<String>),
        name!(input, JsonB),
        name!(attempt, i32),
        name!(lease_expires_at, TimestampWithTimeZone),
    ),
> {
    let (queue, worker_id, max_count, lease) = claim_args(queue, worker_id, max_count, lease).or_raise();
    let timeout = required("timeout", timeout, "pass how long to wait for work, such as '1 second'")
        .and_then(|t| claim_wait::check_wait(&t))
        .or_raise();
    let rows = claim_wait::claim_wait(queue, max_count, timeout, || {
        // Each attempt counts from the clock: the transaction began before the wait.
        let at = pgrx::datum::clock_timestamp();
        let activity_types = activity_types.clone();
        call(|c, caller| {
            claim::claim(c, caller, claim::Request { queue, worker_id, max_count, lease, activity_types, at })
        })
    });
    claimed_table(rows)
}

type ClaimedRow = (
    name!(activity_id, Uuid),
    name!(execution_id, Uuid),
    name!(workflow_type, String),
    name!(step_key, String),
    name!(activity_type, Option<String>),
    name!(input, JsonB),
    name!(attempt, i32),
    name!(lease_expires_at, TimestampWithTimeZone),
);

fn claimed_table(rows: Vec<claim::Claimed>) -> TableIterator<'static, ClaimedRow> {
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.activity_id,
            r.execution_id,
            r.workflow_type,
            r.step_key,
            r.activity_type,
            r.input,
            r.attempt,
            r.lease_expires_at,
        )
    }))
}

/// Claims one activity by id, if it is claimable now (client-driven engines that run
/// their own activities); no row if a worker has it, its retry is not due, or it ended.
/// (`id`, not `activity_id`: that name is taken by the result column.)
#[allow(clippy::type_complexity)] // the `name!` types must be spelled out: see workflow_claim
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_claim_activity(
    id: Option<Uuid>,
    worker_id: Option<&str>,
    lease: default!(Option<Interval>, "'5 minutes'"),
) -> TableIterator<
    'static,
    (
        name!(activity_id, Uuid),
        name!(execution_id, Uuid),
        name!(workflow_type, String),
        name!(step_key, String),
        name!(activity_type, Option<String>),
        name!(input, JsonB),
        name!(attempt, i32),
        name!(lease_expires_at, TimestampWithTimeZone),
    ),
> {
    let rows = call(|c, caller| {
        let id = required("id", id, "pass the id workflow_schedule_activity returned")?;
        let worker_id = required("worker_id", worker_id, "pass a name for this worker (host:pid)")?;
        let lease = required("lease", lease, "pass how long the claim holds, such as '5 minutes'")?;
        claim::claim_activity(c, caller, id, worker_id, lease)
    });
    claimed_table(rows)
}

/// Completes a claimed activity; false if it was already completed or cancelled.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_complete_activity(
    activity_id: Option<Uuid>,
    output: default!(Option<JsonbArg>, "'null'"),
    attempt: default!(Option<i32>, "NULL"),
) -> bool {
    call(|c, caller| {
        let id = self::activity_id(activity_id)?;
        let output = required_json("output", output, "pass 'null'::jsonb for an activity without output")?;
        activity::complete(c, caller, id, output, attempt)
    })
}

/// Completes many activities in one call (one commit); element i says what completing
/// activity i returned. Any error rolls the whole call back.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_complete_activities(
    activity_ids: Option<Vec<Option<Uuid>>>,
    outputs: default!(Option<Vec<Option<JsonB>>>, "NULL"),
    attempts: default!(Option<Vec<Option<i32>>>, "NULL"),
) -> Vec<bool> {
    let outputs = outputs.map(|v| v.into_iter().map(json).collect());
    call(|c, caller| activity::complete_many(c, caller, activity_ids, outputs, attempts))
}

/// Fails an attempt: 'retrying' or 'failed' ('cancelled' if the activity was cancelled).
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_fail_activity(
    activity_id: Option<Uuid>,
    error: Option<JsonbArg>,
    attempt: default!(Option<i32>, "NULL"),
    retryable: default!(Option<bool>, true),
) -> &'static str {
    call(|c, caller| {
        let id = self::activity_id(activity_id)?;
        let error = required_json(
            "error",
            error,
            "pass the error as JSON, such as '{\"type\": \"Timeout\", \"message\": \"...\"}'",
        )?;
        let retryable = required("retryable", retryable, "pass true (retry by the step's policy) or false (fail now)")?;
        activity::fail(c, caller, id, error, attempt, retryable)
    })
    .as_str()
}

/// Extends the lease of a running activity; true when cancellation was requested.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_heartbeat(
    activity_id: Option<Uuid>,
    attempt: default!(Option<i32>, "NULL"),
    details: default!(Option<JsonbArg>, "NULL"),
) -> bool {
    call(|c, caller| {
        let id = self::activity_id(activity_id)?;
        activity::heartbeat(c, caller, id, attempt, json_arg("details", details)?)
    })
}

/// The execution and every step, pending ones included.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_status(execution_id: Option<Uuid>) -> JsonB {
    JsonB(call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        status::status(c, caller, id)
    }))
}

/// One pass of due work (expired leases, delayed starts); returns how many items moved.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_dispatch(max_items: default!(Option<i32>, 1000)) -> i32 {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_dispatch")?;
        let max_items =
            required("max_items", max_items, "pass how many items of each kind one pass may move, such as 1000")?;
        dispatch::dispatch(c, max_items)
    })
}

/// Sends a signal; buffered until a step waits for it. The same idempotency key again is a no-op.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_signal(
    execution_id: Option<Uuid>,
    name: Option<&str>,
    payload: default!(Option<JsonbArg>, "'null'"),
    idempotency_key: default!(Option<&str>, "NULL"),
) -> Uuid {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let name = required("name", name, "pass the signal's name, such as 'approved'")?;
        let payload = required_json("payload", payload, "pass 'null'::jsonb for a signal without payload")?;
        signal::send(c, caller, id, name, payload, idempotency_key)
    })
}

/// Cancels an execution and its children; false if it had already finished.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_cancel(execution_id: Option<Uuid>, reason: default!(Option<&str>, "NULL")) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        execution::cancel(c, caller, id, reason)
    })
}

/// Resumes a failed or cancelled execution, reusing every completed step.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_retry(execution_id: Option<Uuid>) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        execution::retry(c, caller, id)
    })
}

/// Schedules a step of a client-driven execution; idempotent per step_key.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_schedule_activity(
    execution_id: Option<Uuid>,
    step_key: Option<&str>,
    activity_type: Option<&str>,
    input: default!(Option<JsonbArg>, "'{}'"),
    options: default!(Option<JsonbArg>, "'{}'"),
) -> Uuid {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let step_key = required("step_key", step_key, "pass the key that names this step for replays")?;
        let input = required_json("input", input, "pass '{}' for no input")?;
        let options = required_json("options", options, "pass '{}' for no options")?;
        client_driven::schedule_activity(c, caller, id, step_key, activity_type, input, options)
    })
}

/// Completes a client-driven execution; false if it was already completed.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_complete(execution_id: Option<Uuid>, output: default!(Option<JsonbArg>, "'null'")) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let output = required_json("output", output, "pass 'null'::jsonb for an execution without output")?;
        execution::finish_client_driven(c, caller, id, ClientOutcome::Complete(output), None)
    })
}

/// `workflow_complete` by the process that holds the execution's replay turn: 55000 once
/// the turn is over (another process replays it).
#[pg_extern(volatile, parallel_unsafe, name = "workflow_complete")]
fn workflow_complete_fenced(execution_id: Option<Uuid>, output: Option<JsonbArg>, lease_token: Option<i32>) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let output = required_json("output", output, "pass 'null'::jsonb for an execution without output")?;
        let token = required("lease_token", lease_token, "pass the lease_token workflow_claim_executions returned")?;
        execution::finish_client_driven(c, caller, id, ClientOutcome::Complete(output), Some(token))
    })
}

/// Fails a client-driven execution; false if it had already failed.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_fail(execution_id: Option<Uuid>, error: Option<JsonbArg>) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let error = required_json("error", error, "pass the error as JSON, such as '{\"message\": \"...\"}'")?;
        execution::finish_client_driven(c, caller, id, ClientOutcome::Fail(error), None)
    })
}

/// `workflow_fail` by the process that holds the execution's replay turn.
#[pg_extern(volatile, parallel_unsafe, name = "workflow_fail")]
fn workflow_fail_fenced(execution_id: Option<Uuid>, error: Option<JsonbArg>, lease_token: Option<i32>) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let error = required_json("error", error, "pass the error as JSON, such as '{\"message\": \"...\"}'")?;
        let token = required("lease_token", lease_token, "pass the lease_token workflow_claim_executions returned")?;
        execution::finish_client_driven(c, caller, id, ClientOutcome::Fail(error), Some(token))
    })
}

/// The execution started with this idempotency key (for `tenant_id`'s, for a bound
/// caller its own tenant's), or NULL: finds without starting.
#[pg_extern(stable, parallel_restricted)]
fn workflow_find(
    workflow_type: Option<&str>,
    idempotency_key: Option<&str>,
    tenant_id: default!(Option<String>, "NULL"),
) -> Option<Uuid> {
    call(|c, caller| {
        let workflow_type = required("workflow_type", workflow_type, "pass the type the execution was started as")?;
        let key = required("idempotency_key", idempotency_key, "pass the key it was started with")?;
        replay::find(c, caller, workflow_type, key, tenant_id)
    })
}

/// Hands ready client-driven executions of these types to this process for a replay
/// turn (README: SQL API); each is replayed by one process at a time.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_claim_executions(
    workflow_types: Option<Vec<Option<String>>>,
    worker_id: Option<&str>,
    max_count: default!(Option<i32>, 1),
    lease: default!(Option<Interval>, "'1 minute'"),
) -> TableIterator<
    'static,
    (
        name!(execution_id, Uuid),
        name!(workflow_type, String),
        name!(input, JsonB),
        name!(lease_token, i32),
        name!(lease_expires_at, TimestampWithTimeZone),
    ),
> {
    let claimed = call(|c, caller| {
        let types = required("workflow_types", workflow_types, "pass the workflow types this process replays")?;
        let types = types
            .into_iter()
            .map(|t| t.ok_or_else(|| WorkflowError::invalid("workflow_types must not contain NULL")))
            .collect::<Result<Vec<_>>>()?;
        let worker_id = required("worker_id", worker_id, "pass a name for this process (host:pid)")?;
        let max_count = required("max_count", max_count, "pass how many executions to take, such as 1")?;
        let lease = required("lease", lease, "pass how long the turn lasts, such as '1 minute'")?;
        replay::claim(c, caller, types, worker_id, max_count, lease)
    });
    TableIterator::new(
        claimed.into_iter().map(|e| (e.execution_id, e.workflow_type, e.input, e.lease_token, e.lease_expires_at)),
    )
}

/// Extends a replay turn; false once it is over (another process took the execution).
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_renew_execution(
    execution_id: Option<Uuid>,
    lease_token: Option<i32>,
    lease: default!(Option<Interval>, "'1 minute'"),
) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let token = required("lease_token", lease_token, "pass the lease_token workflow_claim_executions returned")?;
        let lease = required("lease", lease, "pass how long the turn lasts, such as '1 minute'")?;
        replay::renew(c, caller, id, token, lease)
    })
}

/// Ends a replay turn: the execution waits for what it scheduled (or is ready again at
/// once if something finished during the turn); false if the turn was already over.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_release_execution(execution_id: Option<Uuid>, lease_token: Option<i32>) -> bool {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let token = required("lease_token", lease_token, "pass the lease_token workflow_claim_executions returned")?;
        replay::release(c, caller, id, token)
    })
}

/// A new UUIDv7 (time-ordered); the engine's ids, usable as a column default.
#[pg_extern(volatile, parallel_safe)]
fn workflow_uuidv7() -> Uuid {
    crate::engine::new_id()
}

/// Wakes this database's dispatcher at commit (and the launcher, which then looks for
/// new databases with the extension). Rarely needed: committing work wakes it already.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_wake() -> bool {
    crate::wake::request_probe_at_commit();
    crate::wake::wake_at_commit();
    crate::wake::enabled()
}

/// Blocks until the execution finishes or the timeout passes; returns workflow_status().
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_await(execution_id: Option<Uuid>, timeout: default!(Option<Interval>, "'30 seconds'")) -> JsonB {
    JsonB(call(|_, caller| {
        let id = self::execution_id(execution_id)?;
        let timeout = required("timeout", timeout, "pass how long to wait, such as '30 seconds'")?;
        // Polls in SPI connections of its own, nested in this one, still as the owner.
        crate::engine::await_finish::await_finish(caller, id, timeout)
    }))
}

/// Binds a role, and every role that inherits its rights, to a tenant (superusers and
/// the `owner` part, from a role bound to no tenant). Its calls then see and act on that
/// tenant's executions alone.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_bind_tenant(role: Option<&str>, tenant_id: Option<&str>) {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_bind_tenant")?;
        tenancy::bind(c, role, tenant_id)
    })
}

/// Removes a role's tenant binding; false if it had none.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_unbind_tenant(role: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_unbind_tenant")?;
        tenancy::unbind(c, role)
    })
}

/// Gives a role one of the four parts (README: Guarantees and security). Declared by
/// hand for its `regrole` argument, so that `workflow_grant('app_worker', 'worker')`
/// takes a role name as GRANT does.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = r#"
CREATE FUNCTION "workflow_grant"("role" regrole, "part" TEXT) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_grant_wrapper';
"#
)]
fn workflow_grant(role: Option<pg_sys::Oid>, part: Option<&str>) {
    call(|c, caller| {
        let role = required("role", role, "pass a role name")?;
        let part = grants::Part::parse(part)?;
        // Granting acts for every tenant: an unbound grantee sees them all.
        tenancy::require_unbound(caller, "workflow_grant")?;
        grants::grant(c, role, part)
    })
}

/// Takes back every part `workflow_grant` gave the role.
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = r#"
CREATE FUNCTION "workflow_revoke"("role" regrole) RETURNS void
VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'workflow_revoke_wrapper';
"#
)]
fn workflow_revoke(role: Option<pg_sys::Oid>) {
    call(|c, caller| {
        let role = required("role", role, "pass a role name")?;
        tenancy::require_unbound(caller, "workflow_revoke")?;
        grants::revoke(c, role)
    })
}

/// The tenant the current role acts for; NULL when it acts for every tenant. The row
/// level security policies on the tables are written with it.
#[pg_extern(stable, parallel_restricted)]
fn workflow_current_tenant() -> Option<String> {
    call(|_, caller| Ok(caller.tenant.clone()))
}

/// Triggers, apart: `#[pg_trigger]` needs the standard `Result` in scope.
pub mod triggers {
    use pgrx::prelude::*;
    use pgrx::{AllocatedByPostgres, PgTrigger, PgTriggerError};

    /// Statement trigger on workflow_tenant_role: tells every backend, at commit, to
    /// forget the tenants it resolved (engine::tenancy), however the table was changed.
    #[pg_trigger]
    fn workflow_tenant_role_changed<'a>(
        trigger: &'a PgTrigger<'a>,
    ) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(trigger.relation()?.oid()) };
        Ok(None)
    }
}

/// Per queue: activities ready, delayed, running, leases expired and not yet moved, the
/// oldest ready one's age, and attempts completed and failed in the last minute and hour.
#[allow(clippy::type_complexity)] // the `name!` types must be spelled out: see workflow_claim
#[pg_extern(stable, parallel_restricted)]
fn workflow_queue_stats() -> TableIterator<
    'static,
    (
        name!(queue, String),
        name!(ready, i64),
        name!(delayed, i64),
        name!(running, i64),
        name!(expired_leases, i64),
        name!(oldest_ready_age, Option<Interval>),
        name!(completed_last_minute, i64),
        name!(failed_last_minute, i64),
        name!(completed_last_hour, i64),
        name!(failed_last_hour, i64),
    ),
> {
    let rows = call(stats::queue_stats);
    TableIterator::new(rows.into_iter().map(|q| {
        (
            q.queue,
            q.ready,
            q.delayed,
            q.running,
            q.expired_leases,
            q.oldest_ready_age,
            q.completed_last_minute,
            q.failed_last_minute,
            q.completed_last_hour,
            q.failed_last_hour,
        )
    }))
}

/// Executions started since `since`, per workflow type and version: counts by status,
/// duration percentiles; per step: attempts, failures by error type, duration percentiles.
#[pg_extern(stable, parallel_restricted)]
fn workflow_execution_stats(
    since: default!(
        Option<TimestampWithTimeZone>,
        "pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval"
    ),
) -> JsonB {
    JsonB(call(|c, caller| {
        let since = required("since", since, "pass a timestamp, such as now() - interval '1 day'")?;
        stats::execution_stats(c, caller, since)
    }))
}

/// Executions matching `filter`, newest first; pass the last id as `after` for the next page.
#[allow(clippy::type_complexity)] // the `name!` types must be spelled out: see workflow_claim
#[pg_extern(stable, parallel_restricted)]
fn workflow_list(
    filter: default!(Option<JsonbArg>, "'{}'"),
    page_size: default!(Option<i32>, 50),
    after: default!(Option<Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(id, Uuid),
        name!(workflow_type, String),
        name!(status, String),
        name!(tenant_id, Option<String>),
        name!(labels, JsonB),
        name!(created_at, TimestampWithTimeZone),
        name!(finished_at, Option<TimestampWithTimeZone>),
        name!(error, Option<JsonB>),
    ),
> {
    let rows = call(|c, caller| {
        let filter = required_json("filter", filter, "pass '{}' for every execution")?;
        let page_size = required("page_size", page_size, "pass how many executions a page holds, such as 50")?;
        search::list(c, caller, filter, page_size, after)
    });
    TableIterator::new(
        rows.into_iter()
            .map(|e| (e.id, e.workflow_type, e.status, e.tenant_id, e.labels, e.created_at, e.finished_at, e.error)),
    )
}

/// Executions waiting for signal `signal_name`, longest waiting first: an approval inbox.
#[allow(clippy::type_complexity)] // the `name!` types must be spelled out: see workflow_claim
#[pg_extern(stable, parallel_restricted)]
fn workflow_waiting(
    signal_name: Option<&str>,
    max_count: default!(Option<i32>, 100),
) -> TableIterator<
    'static,
    (
        name!(execution_id, Uuid),
        name!(workflow_type, String),
        name!(step_key, String),
        name!(waiting_since, TimestampWithTimeZone),
        name!(input, JsonB),
        name!(labels, JsonB),
        name!(tenant_id, Option<String>),
    ),
> {
    let rows = call(|c, caller| {
        let name = required("signal_name", signal_name, "pass the signal the steps wait for, such as 'approved'")?;
        let max_count = required("max_count", max_count, "pass how many executions at most, such as 100")?;
        search::waiting(c, caller, name, max_count)
    });
    TableIterator::new(
        rows.into_iter()
            .map(|w| (w.execution_id, w.workflow_type, w.step_key, w.waiting_since, w.input, w.labels, w.tenant_id)),
    )
}

/// Queue and execution gauges in the Prometheus text exposition format.
#[pg_extern(stable, parallel_restricted)]
fn workflow_metrics() -> String {
    call(stats::metrics)
}

/// A picture of one execution: its steps, their status, attempts and duration, as
/// Mermaid (`format => 'mermaid'`) or Graphviz (`'dot'`) text.
#[pg_extern(stable, parallel_restricted)]
fn workflow_graph(execution_id: Option<Uuid>, format: default!(Option<&str>, "'mermaid'")) -> String {
    call(|c, caller| {
        let id = self::execution_id(execution_id)?;
        let format = required("format", format, "pass 'mermaid' or 'dot'")?;
        graph::graph(c, caller, id, format)
    })
}

/// Pauses a queue or limits it: `{"paused": true}`, `{"max_running": 3}`, `{"rate_limit":
/// {"count": 60, "per": "1 minute", "burst": 10}}` (absent or null: no such limit; `{}`
/// removes them all). Returns the configuration in force.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_queue_configure(queue: Option<&str>, options: Option<JsonbArg>) -> JsonB {
    JsonB(call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_queue_configure")?;
        let queue = required("queue", queue, "pass a queue name such as 'default'")?;
        let options = required_json("options", options, "pass '{}' to remove the queue's limits")?;
        queues::configure(c, queue, options)
    }))
}

/// Pauses a workflow type: its starts are accepted and wait (`pending`) until it is
/// resumed; running executions go on. False if it was paused already.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_type_pause(workflow_type: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_type_pause")?;
        let workflow_type = definitions::check_type_name("workflow_type", workflow_type)?;
        admission::pause_type(c, &workflow_type)
    })
}

/// Resumes a paused workflow type: what waited starts, oldest first. False if it was not paused.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_type_resume(workflow_type: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_type_resume")?;
        let workflow_type = definitions::check_type_name("workflow_type", workflow_type)?;
        admission::resume_type(c, &workflow_type)
    })
}

/// Creates (or replaces) a schedule that starts `workflow_type` with `input` on `schedule`
/// (5-field cron, `@daily`-style, or `@every 30s`). Options: `timezone` ('UTC'),
/// `overlap` ('skip' | 'buffer_one' | 'allow_all'), `catch_up` ('latest' | 'skip'),
/// `paused`, `start` (workflow_start's options). Returns the schedule with its next fire.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_schedule_create(
    name: Option<&str>,
    schedule: Option<&str>,
    workflow_type: Option<&str>,
    input: default!(Option<JsonbArg>, "'{}'"),
    options: default!(Option<JsonbArg>, "'{}'"),
) -> JsonB {
    JsonB(call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_schedule_create")?;
        let name = required("name", name, "pass a name for the schedule, such as 'nightly-reextract'")?;
        let schedule = required("schedule", schedule, "pass a cron expression such as '0 2 * * *', or '@every 1h'")?;
        let workflow_type = required("workflow_type", workflow_type, "pass the workflow the schedule starts")?;
        let input = required_json("input", input, "pass '{}' for no input")?;
        let options = required_json("options", options, "pass '{}' for the defaults")?;
        cron_schedules::create(c, caller, name, schedule, workflow_type, input, options)
    }))
}

/// Deletes a schedule; false if there was none.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_schedule_delete(name: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_schedule_delete")?;
        cron_schedules::delete(c, required("name", name, "pass the schedule's name")?)
    })
}

/// Pauses a schedule (no fires until resumed); false if there is none.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_schedule_pause(name: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_schedule_pause")?;
        cron_schedules::set_paused(c, required("name", name, "pass the schedule's name")?, true)
    })
}

/// Resumes a schedule; its missed fires follow its catch-up policy. False if there is none.
#[pg_extern(volatile, parallel_unsafe)]
fn workflow_schedule_resume(name: Option<&str>) -> bool {
    call(|c, caller| {
        tenancy::require_unbound(caller, "workflow_schedule_resume")?;
        cron_schedules::set_paused(c, required("name", name, "pass the schedule's name")?, false)
    })
}

/// Every schedule with its next fire time, last fire and last execution.
#[pg_extern(stable, parallel_restricted)]
fn workflow_schedule_list() -> JsonB {
    JsonB(call(|c, _| cron_schedules::list(c)))
}
