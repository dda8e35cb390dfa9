//! Device tokens (MQTT user names), from `tokens` or `tokens_file`, whichever is set on the
//! higher layer; never echoed in messages.

use std::path::PathBuf;

use super::layers::Raw;
use super::values::{check_mqtt_string_len, check_no_nul};
use super::{invalid, ConfigError, Context};

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
