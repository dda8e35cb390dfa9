//! Device tokens (MQTT user names), from `tokens` or `tokens_file`, whichever is set on the
//! higher layer; never echoed in messages.

use std::path::PathBuf;

use super::layers::Raw;
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
    match tokens.iter().position(|token| token.is_empty()) {
        Some(index) => Err(raw.fail(format!("token {} of {} is empty", index + 1, tokens.len()))),
        None => Ok(tokens),
    }
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
/// the error when no token is left.
pub fn parse_tokens_file(name: &str, text: &str) -> Result<Vec<String>, String> {
    let tokens: Vec<String> = text
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(String::from)
        .collect();
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
