//! Device tokens (MQTT user names), from `tokens` or `tokens_file`, whichever is set on the
//! higher layer, never echoed in messages; or named by index from `tokens_template` (and
//! `tokens_start`), an alternative to both.

use std::path::PathBuf;

use super::layers::Raw;
use super::values::{check_mqtt_string_len, check_no_nul};
use super::{invalid, ConfigError, Context};
use crate::token_template::{self, TokenTemplate};

/// How the devices are named: a token list (`tokens`, `tokens_file`) or a template.
pub(super) struct DeviceTokens {
    pub(super) tokens: Vec<String>,
    pub(super) tokens_file: Option<PathBuf>,
    /// `tokens_template` and `tokens_start`, when the template is what names the devices.
    pub(super) template: Option<(TokenTemplate, u64)>,
}

/// The template or the list, whichever is set on the higher layer; both on one layer is a
/// usage error naming both. `tokens_start` needs a template somewhere.
pub(super) fn resolve_device_tokens(
    get: &dyn Fn(&str) -> Option<Raw>,
    ctx: &Context,
) -> Result<DeviceTokens, ConfigError> {
    let template = get("tokens_template").filter(|raw| !raw.is_blank());
    // `tokens_start = 0` (the shipped config.toml) means nothing without a template.
    let start = get("tokens_start").filter(|raw| !raw.equals_default());
    if let (Some(start), None) = (&start, &template) {
        return Err(start.fail(
            "needs a tokens template (--tokens-template 'DW{i:08}'): it is the number of the first device the template names",
        ));
    }
    let listed = [get("tokens"), get("tokens_file")]
        .into_iter()
        .flatten()
        .filter(|raw| !raw.is_blank())
        .max_by_key(|raw| raw.origin.layer());
    let template = match (template, listed) {
        (Some(template), Some(listed)) if template.origin.layer() == listed.origin.layer() => {
            return Err(invalid(format!(
                "{} and {}: give a tokens template or a token list, not both",
                template.describe(),
                listed.describe()
            )));
        }
        (Some(template), Some(listed)) if template.origin.layer() < listed.origin.layer() => None,
        (template, _) => template,
    };
    let Some(template) = template else {
        let (tokens, tokens_file) = resolve_tokens(get("tokens"), get("tokens_file"), ctx)?;
        return Ok(DeviceTokens {
            tokens,
            tokens_file,
            template: None,
        });
    };
    let parsed =
        TokenTemplate::parse(&template.text()?).map_err(|problem| template.fail(problem))?;
    let start = match get("tokens_start") {
        Some(raw) => {
            let start = raw.whole()?;
            if start > token_template::MAX_START {
                return Err(raw.fail(format!("at most {}", token_template::MAX_START)));
            }
            start
        }
        None => 0,
    };
    Ok(DeviceTokens {
        tokens: Vec::new(),
        tokens_file: None,
        template: Some((parsed, start)),
    })
}

/// Tokens come from `tokens` or `tokens_file`, whichever is set on the higher layer.
pub(super) fn resolve_tokens(
    list: Option<Raw>,
    file: Option<Raw>,
    ctx: &Context,
) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    let list = list.filter(|raw| !raw.is_blank());
    let file = file.filter(|raw| !raw.is_blank());
    match (list, file) {
        (Some(list), Some(file)) if list.origin.layer() == file.origin.layer() => {
            Err(invalid(format!(
                "{} and {}: give tokens or a tokens file, not both",
                list.describe(),
                file.describe()
            )))
        }
        (Some(list), Some(file)) if file.origin.layer() > list.origin.layer() => {
            tokens_from_file(&file, ctx)
        }
        (Some(list), _) => tokens_from_list(&list).map(|tokens| (tokens, None)),
        (None, Some(file)) => tokens_from_file(&file, ctx),
        (None, None) => Ok((Vec::new(), None)),
    }
}

pub(super) fn tokens_from_list(raw: &Raw) -> Result<Vec<String>, ConfigError> {
    let tokens = raw.list()?;
    let count = tokens.len();
    for (index, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(raw.fail(format!("token {} of {count} is empty", index + 1)));
        }
        check_mqtt_string_len(token.len())
            .map_err(|problem| raw.fail(format!("token {} of {count} is {problem}", index + 1)))?;
        check_no_nul(token)
            .map_err(|problem| raw.fail(format!("token {} of {count} {problem}", index + 1)))?;
    }
    Ok(tokens)
}

pub(super) fn tokens_from_file(
    raw: &Raw,
    ctx: &Context,
) -> Result<(Vec<String>, Option<PathBuf>), ConfigError> {
    let path = raw.path(ctx)?;
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|err| invalid(format!("tokens file {name}: {err}")))?;
    let tokens = parse_tokens_file(&name, &text).map_err(invalid)?;
    Ok((tokens, Some(path)))
}

/// One token per line; blank lines and `#` comments are skipped. `name` names the file in
/// the error when no token is left, or with the line of a token MQTT cannot carry (too
/// long, or with a NUL); the token itself is never echoed.
pub fn parse_tokens_file(name: &str, text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    for (line_index, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        check_mqtt_string_len(token.len()).map_err(|problem| {
            format!(
                "tokens file {name} line {}: token is {problem}",
                line_index + 1
            )
        })?;
        check_no_nul(token).map_err(|problem| {
            format!(
                "tokens file {name} line {}: token {problem}",
                line_index + 1
            )
        })?;
        tokens.push(token.to_string());
    }
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    let why = if text.trim().is_empty() {
        "file is empty"
    } else {
        "only blank lines and comments"
    };
    Err(format!("tokens file {name}: no tokens ({why})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_files_skip_blank_lines_and_comments() {
        assert_eq!(
            parse_tokens_file("t", "a\n# b\n\n c \n"),
            Ok(vec!["a".to_string(), "c".to_string()])
        );
        assert_eq!(
            parse_tokens_file("t", "\n\n"),
            Err("tokens file t: no tokens (file is empty)".to_string())
        );
    }
}
