//! `--mix` (`STEP=WEIGHT,...`): the weighted draw of a step for requests
//! that carry no `x-mock-scenario`. Pure: the caller supplies the roll.

use super::scenario::{bad, parse_step, Step, StepError, OK};

/// Parses a `--mix` value (`STEP=WEIGHT,...`) into [`super::MockConfig::mix`]
/// entries, checking each step. An empty value is no mix.
pub fn parse_mix(value: &str) -> Result<Vec<(String, u32)>, StepError> {
    if value.trim().is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            let (step, weight) = entry
                .rsplit_once('=')
                .ok_or_else(|| bad(entry, "a mix entry is STEP=WEIGHT"))?;
            let weight = weight
                .trim()
                .parse::<u32>()
                .map_err(|_| bad(entry, format!("'{weight}' is not a weight")))?;
            parse_step(step)?;
            Ok((step.trim().to_owned(), weight))
        })
        .collect()
}

/// A weighted draw over steps (`--mix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    steps: Vec<Step>,
    /// Running sums of the weights, one per step.
    bounds: Vec<u64>,
}

impl Mix {
    /// Checks the entries; `Ok(None)` when there are none (always `ok`).
    pub fn new(entries: &[(String, u32)]) -> Result<Option<Mix>, StepError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut steps = Vec::with_capacity(entries.len());
        let mut bounds = Vec::with_capacity(entries.len());
        let mut sum = 0u64;
        for (step, weight) in entries {
            steps.push(parse_step(step)?);
            sum += u64::from(*weight);
            bounds.push(sum);
        }
        if sum == 0 {
            return Err(bad("mix", "the weights add up to 0"));
        }
        Ok(Some(Mix { steps, bounds }))
    }

    /// The sum of all weights: a roll is drawn from `0..total()`.
    pub fn total(&self) -> u64 {
        self.bounds.last().copied().unwrap_or(0)
    }

    /// The step a roll in `0..total()` lands on.
    pub fn pick(&self, roll: u64) -> &Step {
        let index = self.bounds.partition_point(|bound| *bound <= roll);
        self.steps.get(index).or(self.steps.last()).unwrap_or(&OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mix_specs() {
        assert_eq!(
            parse_mix("ok=90,status:429=5, status:503:html=5"),
            Ok(vec![
                ("ok".into(), 90),
                ("status:429".into(), 5),
                ("status:503:html".into(), 5)
            ])
        );
        assert_eq!(parse_mix(""), Ok(vec![]));
        assert_eq!(
            parse_mix("ok").map_err(|e| e.reason),
            Err("a mix entry is STEP=WEIGHT".into())
        );
        assert_eq!(
            parse_mix("ok=x").map_err(|e| e.reason),
            Err("'x' is not a weight".into())
        );
        assert_eq!(
            parse_mix("nope=1").map_err(|e| e.reason),
            Err("unknown step 'nope'".into())
        );
    }

    #[test]
    fn mix_picks_by_weight() {
        let entries = vec![
            ("ok".to_owned(), 90),
            ("status:429".to_owned(), 0),
            ("hang".to_owned(), 10),
        ];
        let mix = Mix::new(&entries).ok().flatten();
        let Some(mix) = mix else {
            unreachable!("mix must parse")
        };
        assert_eq!(mix.total(), 100);
        let cases = [
            (0, Step::Ok),
            (89, Step::Ok),
            (90, Step::Hang),
            (99, Step::Hang),
        ];
        for (roll, want) in cases {
            assert_eq!(mix.pick(roll), &want, "{roll}");
        }
        assert_eq!(Mix::new(&[]), Ok(None));
        assert!(Mix::new(&[("ok".to_owned(), 0)]).is_err());
    }
}
