//! `dlm eval --chat`: each prompt goes through the model's chat template as one user
//! message, tokenized without added special tokens, then closed with `</s>` like every
//! SPEC §2 source; without a template the plan is what it always was.

mod common;

use dlm_data::{ChatTemplate, Tokenizer};
use dlm_eval::{Dataset, Example, Format, Subset, Task, plan};

fn dataset(prompts: &[&str]) -> Dataset {
    Dataset {
        task: Task::Gsm8k,
        format: Format::Prompted,
        shots: Some(0),
        template: "test".into(),
        subsets: vec![Subset {
            name: "s".into(),
            source: "s.jsonl".into(),
            examples: prompts.iter().map(|p| Example { prompt: (*p).into(), target: "a".into(), options: None }).collect(),
        }],
    }
}

#[test]
fn chat_prompts_are_rendered_through_the_template() {
    let tok = Tokenizer::from_dir(common::tiny_xlmr()).unwrap();
    // A template that wraps the user's text in words of the tiny vocabulary.
    let template = ChatTemplate::from_source(
        "{{ bos_token }}{% for m in messages %}to {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} of{% endif %}",
        "test.jinja",
        &[("bos_token", "<s>")],
    )
    .unwrap();
    let data = dataset(&["the and", "a"]);
    let with = plan(&data, &tok, Some(&template), 512, None).unwrap();
    let without = plan(&data, &tok, None, 512, None).unwrap();
    for (i, text) in ["to the and of", "to a of"].iter().enumerate() {
        assert_eq!(with.items[i].src, tok.encode(text, true).unwrap(), "prompt {i}");
        assert_eq!(with.items[i].tgt, without.items[i].tgt);
    }
    assert_eq!(without.items[0].src, tok.encode("the and", true).unwrap());
}
