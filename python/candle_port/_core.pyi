"""Type stubs for the native module (the PyO3 binding layer). Users import `candle_port`."""

from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

def available_devices() -> List[str]: ...
def get_num_threads() -> int: ...
def apply_chat_template(
    templates: Optional[Union[str, Dict[str, str]]],
    chat_template: Optional[str],
    conversations: List[List[Dict[str, Any]]],
    add_generation_prompt: bool,
    continue_final_message: Optional[str],
    tools: Optional[List[Dict[str, Any]]],
    documents: Optional[List[Dict[str, Any]]],
    variables: Dict[str, Any],
) -> List[str]: ...
def check_generation_config(generation_config: str) -> None: ...
def hf_hub_download(
    repo_id: str,
    filename: str,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    token: Optional[str] = None,
    local_files_only: bool = False,
) -> str: ...
def snapshot_download(
    repo_id: str,
    revision: Optional[str] = None,
    cache_dir: Optional[str] = None,
    token: Optional[str] = None,
    local_files_only: bool = False,
) -> str: ...

_Ids = npt.NDArray[np.int64]

class EncoderModel:
    @staticmethod
    def from_pretrained(path: str, head: str, device: str, dtype: str) -> "EncoderModel": ...
    @property
    def config_json(self) -> str: ...
    def forward(
        self,
        input_ids: _Ids,
        attention_mask: Optional[_Ids] = None,
        token_type_ids: Optional[_Ids] = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> Dict[str, Union[npt.NDArray[np.float32], Tuple[npt.NDArray[np.float32], ...]]]: ...

class GenerationStream:
    def __iter__(self) -> Iterator[npt.NDArray[np.int64]]: ...
    def __next__(self) -> npt.NDArray[np.int64]: ...
    def finish(self) -> npt.NDArray[np.int64]: ...
    @property
    def sequences(self) -> npt.NDArray[np.int64]: ...

class GPT2:
    @staticmethod
    def from_pretrained(path: str, head: str, device: str, dtype: str) -> "GPT2": ...
    @property
    def config_json(self) -> str: ...
    def forward(
        self,
        input_ids: _Ids,
        attention_mask: Optional[_Ids] = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> Dict[str, Union[npt.NDArray[np.float32], Tuple[npt.NDArray[np.float32], ...]]]: ...
    def stream(
        self,
        input_ids: _Ids,
        attention_mask: Optional[_Ids] = None,
        generation_config: str = "{}",
        tokenizer: Optional["Tokenizer"] = None,
    ) -> GenerationStream: ...
    def generate(
        self,
        input_ids: _Ids,
        attention_mask: Optional[_Ids] = None,
        generation_config: str = "{}",
        tokenizer: Optional["Tokenizer"] = None,
    ) -> Dict[str, Any]: ...

class Tokenizer:
    @staticmethod
    def from_dir(path: str) -> "Tokenizer": ...
    def encode_batch(
        self,
        texts: List[str],
        pairs: Optional[List[str]],
        add_special_tokens: bool,
        truncate_to: Optional[int],
        padding: Optional[str],
        pad_to: Optional[int],
        as_numpy: bool,
        char_offsets: bool,
        truncation_strategy: str = "longest_first",
        stride: int = 0,
        return_overflowing: bool = False,
        alignment: bool = False,
    ) -> Dict[str, object]: ...
    def decode(self, ids: List[int], skip_special_tokens: bool) -> str: ...
    def decode_batch(self, rows: List[List[int]], skip_special_tokens: bool) -> List[str]: ...
    def id_to_token(self, id: int) -> Optional[str]: ...
    def token_to_id(self, token: str) -> Optional[int]: ...
    def save_pretrained(self, path: str) -> None: ...
    def __len__(self) -> int: ...
    @property
    def chat_template(self) -> Optional[Union[str, Dict[str, str]]]: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def model_max_length(self) -> Optional[int]: ...
    @property
    def padding_side(self) -> str: ...
    @property
    def model_input_names(self) -> List[str]: ...
    @property
    def special_tokens(self) -> List[Tuple[str, str]]: ...
