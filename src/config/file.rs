//! The optional TOML file (`--config FILE`, `LOGBOOK_CONFIG`) and `logbook config`, which prints
//! the effective settings.
//!
//! A file sets flags by their long names: `max-depth = 12`, `database-url = "postgres://…"`,
//! `cors-origin = ["https://console.example.com"]`. Precedence is default < file < environment
//! < command line. The file is applied by setting each of its keys' environment variables that
//! the environment does not set already; clap then resolves environment and command line as it
//! always does, so one set of rules covers all three sources and the file can set exactly what
//! the environment can.

use std::collections::BTreeSet;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

/// Reads `path` and sets, for each key, its flag's environment variable unless the environment
/// already has it. Returns the variables it set. Call before any thread starts (it changes the
/// process environment).
pub fn apply(command: &Command, path: &Path) -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("the config file {} is not TOML: {e}", path.display()))?;
    let mut set = BTreeSet::new();
    for (key, value) in table {
        let variable = env_of(command, &key).ok_or_else(|| {
            format!(
                "{}: `{key}` is not a setting (keys are the long flag names of `logbook serve \
                 --help` that have an environment variable)",
                path.display()
            )
        })?;
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    other => scalar(other),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: `{key}`: {e}", path.display()))?
                .join(","),
            other => scalar(&other).map_err(|e| format!("{}: `{key}`: {e}", path.display()))?,
        };
        if std::env::var_os(&variable).is_none() {
            std::env::set_var(&variable, value);
            set.insert(variable);
        }
    }
    Ok(set)
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("{} values are not settings", other.type_str())),
    }
}

/// The environment variable of the flag `--{long}`, in the command or any subcommand.
fn env_of(command: &Command, long: &str) -> Option<String> {
    let own = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    own.or_else(|| command.get_subcommands().find_map(|sub| env_of(sub, long)))
}

/// The effective settings of `command` (a subcommand with the global flags propagated) as TOML
/// that `--config` reads back, each with where its value came from; secrets masked.
pub fn effective(command: &Command, matches: &ArgMatches, from_file: &BTreeSet<String>) -> String {
    let mut out = String::from("# logbook's effective configuration (secrets masked)\n");
    for arg in command.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let Ok(Some(raw)) = matches.try_get_raw(id) else {
            // Unset and without a default.
            out.push_str(&format!("# {long} is not set\n"));
            continue;
        };
        let values: Vec<String> = raw
            .map(|value| mask(long, &value.to_string_lossy()))
            .collect();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "command line".to_owned(),
            Some(ValueSource::EnvVariable) => match &env {
                Some(env) if from_file.contains(env) => "config file".to_owned(),
                Some(env) => format!("environment {env}"),
                None => "environment".to_owned(),
            },
            _ => "default".to_owned(),
        };
        let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
        let value = if values.len() == 1 && !repeatable {
            toml_value(&values[0])
        } else {
            let items: Vec<String> = values.iter().map(|v| toml_value(v)).collect();
            format!("[{}]", items.join(", "))
        };
        // Only flags with an environment variable can come from a file; the others (and the
        // file's own name) are shown as comments, so the output reads back with `--config`.
        let comment = if env.is_none() || long == "config" {
            "# "
        } else {
            ""
        };
        out.push_str(&format!("{comment}{long} = {value}  # {source}\n"));
    }
    out
}

/// A value as TOML: integers and booleans bare, everything else a quoted string.
fn toml_value(text: &str) -> String {
    if text.parse::<i64>().is_ok() || text == "true" || text == "false" {
        text.to_owned()
    } else {
        toml::Value::String(text.to_owned()).to_string()
    }
}

/// Flags whose whole value is secret.
const SECRET_FLAGS: &[&str] = &["ledger-signing-key", "mismatch-webhook-secret"];

/// Secrets are masked: a secret flag entirely; a URL's password, and the query of a URL other
/// than the database's (tokens ride there; the database's carries `sslmode`).
fn mask(long: &str, value: &str) -> String {
    if SECRET_FLAGS.contains(&long) {
        return "****".to_owned();
    }
    let Ok(mut url) = reqwest::Url::parse(value) else {
        return value.to_owned();
    };
    let mut masked = false;
    if url.password().is_some() {
        masked = url.set_password(Some("****")).is_ok();
    }
    if url.query().is_some_and(|q| !q.is_empty()) && long != "database-url" {
        url.set_query(Some("****"));
        masked = true;
    }
    if masked {
        url.to_string()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(mask("ledger-signing-key", "00ff"), "****");
        assert_eq!(
            mask("mismatch-webhook-secret", "s3cret-s3cret-s3cret"),
            "****"
        );
        assert_eq!(
            mask(
                "database-url",
                "postgres://app:hunter2@db:5432/logs?sslmode=require"
            ),
            "postgres://app:****@db:5432/logs?sslmode=require"
        );
        assert_eq!(
            mask("redis-url", "redis://:s3cret@cache:6379"),
            "redis://:****@cache:6379"
        );
        assert_eq!(
            mask("ledger-checkpoint-url", "https://sink.example/in?token=abc"),
            "https://sink.example/in?****"
        );
        assert_eq!(mask("bind", "127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(mask("ws-max-connections-per-key", "32"), "32");
        assert_eq!(
            mask("cors-origin", "https://console.example.com"),
            "https://console.example.com"
        );
    }
}
