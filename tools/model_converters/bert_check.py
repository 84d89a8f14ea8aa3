"""Check that a transformers BERT folder loads offline, with its tokenizer, as M2IST needs it.

    python tools/model_converters/bert_check.py BERT_DIR [--phrase TEXT] [--max-length 20]

BERT_DIR is a local folder (``config.json``, weights, tokenizer files), e.g. one made with
``huggingface-cli download bert-base-uncased --local-dir checkpoints/bert-base-uncased`` on a
machine with internet. Loads tokenizer and model with ``local_files_only=True``, lists weights
missing from / unexpected in the folder (exit status 1 if any), prints hidden size, layers, heads,
vocabulary and parameter count, and runs one phrase through it (token ids and output shape).
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('bert_dir', help='local transformers BERT folder')
    parser.add_argument('--phrase', default='the man on the left', help='phrase to encode')
    parser.add_argument('--max-length', type=int, default=20,
                        help='token budget incl. [CLS]/[SEP] (M2IST: 20, RefCOCOg: 40)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Run the check; returns the facts printed."""
    args = parse_args(argv)
    if not osp.isfile(osp.join(args.bert_dir, 'config.json')):
        sys.exit(f'bert_check: {args.bert_dir} has no config.json: not a transformers model '
                 'folder (download one with huggingface-cli download ... --local-dir DIR)')
    import torch
    from transformers import AutoModel, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.bert_dir, local_files_only=True)
    except Exception as e:  # noqa: BLE001  (transformers raises many types here)
        sys.exit(f'bert_check: no usable tokenizer in {args.bert_dir}: {type(e).__name__}: {e}')
    try:
        model, info = AutoModel.from_pretrained(args.bert_dir, local_files_only=True,
                                                output_loading_info=True)
    except Exception as e:  # noqa: BLE001
        sys.exit(f'bert_check: the model in {args.bert_dir} does not load: '
                 f'{type(e).__name__}: {e}')
    cfg = model.config
    if cfg.model_type != 'bert':
        sys.exit(f'bert_check: {args.bert_dir} holds a {cfg.model_type!r} model, not BERT')
    facts = dict(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
                 num_attention_heads=cfg.num_attention_heads, vocab_size=cfg.vocab_size,
                 params=sum(p.numel() for p in model.parameters()))
    print(f'bert_check: {args.bert_dir}: ' + ', '.join(f'{k}={v}' for k, v in facts.items()))
    problems = {k: list(info.get(k) or []) for k in ('missing_keys', 'unexpected_keys',
                                                     'mismatched_keys', 'error_msgs')}
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        for k, v in problems.items():
            print(f'  {k} ({len(v)}): {v[:20]}{" ..." if len(v) > 20 else ""}')
        sys.exit(f'bert_check: the weights in {args.bert_dir} do not fit its config')
    enc = tokenizer(args.phrase, max_length=args.max_length, truncation=True,
                    padding='max_length', return_tensors='pt')
    with torch.no_grad():
        out = model(input_ids=enc['input_ids'], attention_mask=enc['attention_mask'])
    facts.update(tokens=tokenizer.convert_ids_to_tokens(enc['input_ids'][0].tolist()),
                 output_shape=tuple(out.last_hidden_state.shape))
    print(f'  {args.phrase!r} -> {[t for t in facts["tokens"] if t != tokenizer.pad_token]} '
          f'-> last_hidden_state {facts["output_shape"]}')
    print('bert_check: OK')
    return facts


if __name__ == '__main__':
    main()
