//! `--shard K/N` and `--start-at`: this process's part of a plan run over several hosts or
//! processes (see [`crate::shard`]), refused alike by every shard when the split cannot work.

use super::layers::Raw;
use super::ConfigError;
use crate::shard::{self, Shard};

/// This process's part of the plan: everything when no `--shard` is given.
pub(super) struct ShardPart {
    pub(super) shard: Option<Shard>,
    pub(super) users: u32,
    pub(super) messages: Option<u64>,
    pub(super) spawn_rate: f64,
    pub(super) tokens: Vec<String>,
    pub(super) client_index_offset: u64,
    /// Position of this shard's first token in the whole token list.
    pub(super) token_index_offset: u64,
}

/// Divide users, the message limit and the spawn rate, offset client indexes and split the
/// tokens for `--shard K/N` (see [`crate::shard`]). Every shard needs at least one user, one
/// message (with a limit) and one token (with tokens), or it would run a different plan; the
/// check is on the whole split, so all shards refuse it alike instead of some running.
pub(super) fn resolve_shard(
    raw: Option<Raw>,
    users: u32,
    messages: Option<u64>,
    spawn_rate: f64,
    tokens: Vec<String>,
) -> Result<ShardPart, ConfigError> {
    let Some(raw) = raw.filter(|raw| !raw.is_blank()) else {
        return Ok(ShardPart {
            shard: None,
            users,
            messages,
            spawn_rate,
            tokens,
            client_index_offset: 0,
            token_index_offset: 0,
        });
    };
    let shard = shard::parse_shard(&raw.text()?).map_err(|problem| raw.fail(problem))?;
    if users < shard.count {
        return Err(raw.fail(format!(
            "{users} users cannot be split over {} shards: each shard needs at least one user",
            shard.count
        )));
    }
    if messages.is_some_and(|total| total < u64::from(shard.count)) {
        return Err(raw.fail(format!(
            "--messages {} cannot be split over {} shards: each shard needs at least one message",
            messages.unwrap_or(0),
            shard.count
        )));
    }
    let clients = shard::range_of(users.into(), shard);
    let shard_users = clients.end - clients.start;
    let shard_messages = messages.map(|total| shard::share_of(total, shard));
    let token_index_offset = shard::range_of(tokens.len() as u64, shard).start;
    let tokens = match tokens.is_empty() {
        true => tokens,
        false => shard::tokens_of(&tokens, shard).map_err(|problem| raw.fail(problem))?,
    };
    Ok(ShardPart {
        shard: Some(shard),
        users: shard_users as u32,
        messages: shard_messages,
        spawn_rate: shard::spawn_rate_of(spawn_rate, shard_users, users.into()),
        tokens,
        client_index_offset: clients.start,
        token_index_offset,
    })
}

/// Epoch milliseconds; more than [`shard::START_AT_TOLERANCE`] in the past is refused here,
/// before anything starts, because this host would start later than the others.
pub(super) fn resolve_start_at(raw: Option<Raw>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw.filter(|raw| !raw.is_blank()) else {
        return Ok(None);
    };
    let start_at_ms = raw.whole().map_err(|_| {
        raw.fail("expected milliseconds since the Unix epoch, e.g. $(( $(date +%s) + 10 ))000")
    })?;
    shard::wait_until(start_at_ms, shard::now_epoch_ms()).map_err(|problem| raw.fail(problem))?;
    Ok(Some(start_at_ms))
}
