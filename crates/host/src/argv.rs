//! Reading a command line: the value of a flag, in either of its forms.

/// The value of `--name=value` or `--name value` among `args`.
pub(crate) fn arg_value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if let Some(v) = a.strip_prefix(&prefix) {
            Some(v)
        } else if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_values_in_both_forms() {
        let args: Vec<String> = ["--pidfile=/a.pid", "--data-root", "/d"].map(String::from).to_vec();
        assert_eq!(arg_value(&args, "--pidfile"), Some("/a.pid"));
        assert_eq!(arg_value(&args, "--data-root"), Some("/d"));
        assert_eq!(arg_value(&args, "--exec-root"), None);
    }
}
