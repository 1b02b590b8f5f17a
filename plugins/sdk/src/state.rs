//! Reading the small text states curricula save: `TAG key=value key=value ...`, fields in a
//! fixed order. A readable format keeps checkpoints inspectable by hand; this reader gives
//! every curriculum the same precise errors for a state that does not match.

/// Reads the fields of a saved state in order.
#[derive(Debug)]
pub struct Fields<'a> {
    rest: std::str::Split<'a, char>,
}

impl<'a> Fields<'a> {
    /// Starts reading `text`, which must begin with `tag`.
    pub fn new(text: &'a str, tag: &str) -> Result<Self, String> {
        let mut rest = text.split(' ');
        if rest.next() != Some(tag) {
            return Err(format!("state does not start with `{tag}`"));
        }
        Ok(Self { rest })
    }

    /// The value of the next field, which must be `key=...`.
    pub fn get(&mut self, key: &str) -> Result<&'a str, String> {
        let f = self.rest.next().ok_or_else(|| format!("state lacks `{key}=`"))?;
        f.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .ok_or_else(|| format!("expected `{key}=...`, found `{f}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::Fields;

    #[test]
    fn reads_fields_in_order_and_names_what_is_wrong() {
        let mut f = Fields::new("t1 a=1 b=x,y", "t1").unwrap();
        assert_eq!(f.get("a"), Ok("1"));
        assert_eq!(f.get("b"), Ok("x,y"));
        assert_eq!(f.get("c"), Err("state lacks `c=`".to_string()));
        assert!(Fields::new("t2 a=1", "t1").unwrap_err().contains("`t1`"));
        let mut f = Fields::new("t1 b=2", "t1").unwrap();
        assert_eq!(f.get("a"), Err("expected `a=...`, found `b=2`".to_string()));
    }
}
