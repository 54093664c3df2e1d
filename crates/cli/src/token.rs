//! `dockhand token hash`: reads a token from stdin and prints the `sha256:` label value.

use std::process::ExitCode;

/// The token comes on stdin (never in argv, where `ps` and shell history would keep it); a
/// trailing newline is not part of it.
pub(crate) fn hash() -> anyhow::Result<ExitCode> {
    let mut token = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut token)?;
    let token = token.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&token);
    if token.is_empty() {
        anyhow::bail!("no token on stdin: pipe it in, e.g. `printf %s \"$TOKEN\" | dockhand token hash`");
    }
    crate::output::line(&dockhand_policy::hash_token(token))?;
    Ok(ExitCode::SUCCESS)
}
