//! Suite results and their renderings: the summary line, JSON and JUnit XML reports.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    Failed,
    /// Failed, and listed in the known-failing file.
    ExpectedFailure,
    /// Listed as known-failing, but passed: the list is out of date.
    UnexpectedPass,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub spec: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub fn count(&self, o: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == o).count()
    }

    /// Passed counts passes and expected failures; failed counts the unexpected outcomes.
    pub fn summary(&self) -> (usize, usize) {
        let failed = self.count(Outcome::Failed) + self.count(Outcome::UnexpectedPass);
        (self.cases.len() - failed, failed)
    }

    pub fn ok(&self) -> bool {
        self.summary().1 == 0
    }

    pub fn to_json(&self) -> String {
        let (passed, failed) = self.summary();
        serde_json::to_string_pretty(
            &serde_json::json!({"passed": passed, "failed": failed, "cases": self.cases}),
        )
        .expect("serialisable")
    }

    pub fn to_junit(&self, suite: &str) -> String {
        use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
        let mut tests = TestSuite::new(suite);
        for c in &self.cases {
            let status = match c.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::ExpectedFailure => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(format!(
                        "known failing: {}",
                        c.message.as_deref().unwrap_or("")
                    ));
                    s
                }
                Outcome::Failed | Outcome::UnexpectedPass => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(match c.outcome {
                        Outcome::UnexpectedPass => "listed as known failing, but passed".to_owned(),
                        _ => c.message.clone().unwrap_or_default(),
                    });
                    s
                }
            };
            let mut case = TestCase::new(c.id.as_str(), status);
            case.set_classname(suite);
            tests.add_test_case(case);
        }
        let mut report = quick_junit::Report::new(format!("flytesecret-conformance {suite}"));
        report.add_test_suite(tests);
        report.to_string().expect("a JUnit report serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failures_count_as_passed_and_stale_entries_as_failed() {
        let r = Report {
            cases: vec![
                CaseResult {
                    id: "a".into(),
                    spec: "1".into(),
                    outcome: Outcome::Passed,
                    message: None,
                },
                CaseResult {
                    id: "b".into(),
                    spec: "1".into(),
                    outcome: Outcome::ExpectedFailure,
                    message: Some("x".into()),
                },
                CaseResult {
                    id: "c".into(),
                    spec: "1".into(),
                    outcome: Outcome::UnexpectedPass,
                    message: None,
                },
            ],
        };
        assert_eq!(r.summary(), (2, 1));
        assert!(!r.ok());
        let junit = r.to_junit("service");
        assert!(
            junit.contains("tests=\"3\"") && junit.contains("failures=\"1\""),
            "{junit}"
        );
        assert!(
            junit.contains("<skipped") && junit.contains("<failure"),
            "{junit}"
        );
        assert!(r.to_json().contains("\"unexpected-pass\""));
    }
}
