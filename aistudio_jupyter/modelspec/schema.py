"""The JSON model spec: a list of layers the trainer, the estimator and the ModelBuilder share.

Every field has a range, so a spec that validates can be shape-checked, counted and built
without surprises; whether the layers fit together is ``shapes.infer_shapes``'s question.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ..schemas.common import StrictModel

#: widths, channels, vocabularies: big enough for any model one host trains, small enough that a
#: typo (an extra zero or three) is refused rather than estimated
Width = Annotated[int, Field(ge=1, le=1_048_576)]
Kernel = Annotated[int, Field(ge=1, le=64)]
Stride = Annotated[int, Field(ge=1, le=64)]
Padding = Annotated[int, Field(ge=0, le=64)]
Probability = Annotated[float, Field(ge=0.0, lt=1.0)]


class Linear(StrictModel):
    type: Literal["linear"]
    out_features: Width | Literal["auto"] = Field(description="Output width; 'auto' (last linear layer only) = the number of outputs of the task.")
    bias: bool = True


class _Conv(StrictModel):
    out_channels: Annotated[int, Field(ge=1, le=65_536)]
    kernel_size: Kernel
    stride: Stride = 1
    padding: Padding = 0
    bias: bool = True


class Conv1d(_Conv):
    type: Literal["conv1d"]


class Conv2d(_Conv):
    type: Literal["conv2d"]


class _Pool(StrictModel):
    kernel_size: Kernel
    stride: Stride | None = Field(None, description="Default: kernel_size.")
    padding: Padding = Field(0, description="At most half the kernel size (as torch requires).")

    @model_validator(mode="after")
    def _padding_at_most_half_kernel(self):
        if self.padding * 2 > self.kernel_size:
            raise ValueError("padding must be at most half of kernel_size")
        return self


class MaxPool1d(_Pool):
    type: Literal["maxpool1d"]


class MaxPool2d(_Pool):
    type: Literal["maxpool2d"]


class AvgPool1d(_Pool):
    type: Literal["avgpool1d"]


class AvgPool2d(_Pool):
    type: Literal["avgpool2d"]


class Flatten(StrictModel):
    type: Literal["flatten"]


class Dropout(StrictModel):
    type: Literal["dropout"]
    p: Probability = 0.1


class BatchNorm1d(StrictModel):
    type: Literal["batchnorm1d"]


class BatchNorm2d(StrictModel):
    type: Literal["batchnorm2d"]


class LayerNorm(StrictModel):
    type: Literal["layernorm"]
    eps: float = Field(1e-5, gt=0, le=0.1)


class ReLU(StrictModel):
    type: Literal["relu"]


class GELU(StrictModel):
    type: Literal["gelu"]


class Tanh(StrictModel):
    type: Literal["tanh"]


class Sigmoid(StrictModel):
    type: Literal["sigmoid"]


class SiLU(StrictModel):
    type: Literal["silu"]


class LeakyReLU(StrictModel):
    type: Literal["leaky_relu"]
    negative_slope: float = Field(0.01, ge=0.0, le=1.0)


class Embedding(StrictModel):
    type: Literal["embedding"]
    num_embeddings: Annotated[int, Field(ge=1, le=4_194_304)] = Field(description="Vocabulary size: token ids are 0..num_embeddings-1.")
    embedding_dim: Annotated[int, Field(ge=1, le=65_536)]
    positional: bool = Field(False, description="Add a learned position embedding (one vector per position of the input sequence).")


class TransformerEncoderLayer(StrictModel):
    type: Literal["transformer_encoder_layer"]
    nhead: Annotated[int, Field(ge=1, le=256)]
    dim_feedforward: Width = 2048
    dropout: Probability = 0.1
    activation: Literal["relu", "gelu"] = "relu"
    norm_first: bool = False


class MeanPool(StrictModel):
    """Mean over the sequence axis: (sequence, features) → (features)."""

    type: Literal["mean_pool"]


Layer = Annotated[
    Union[
        Linear, Conv1d, Conv2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, Flatten, Dropout, BatchNorm1d, BatchNorm2d,
        LayerNorm, ReLU, GELU, Tanh, Sigmoid, SiLU, LeakyReLU, Embedding, TransformerEncoderLayer, MeanPool,
    ],
    Field(discriminator="type"),
]

#: every layer type name, in the order the ModelBuilder offers them
LAYER_TYPES: tuple[str, ...] = tuple(m.model_fields["type"].annotation.__args__[0] for m in Layer.__origin__.__args__)


class ModelSpec(StrictModel):
    """A feed-forward stack of layers applied to one sample of ``input_shape``."""

    input_shape: list[Annotated[int, Field(ge=1, le=1_048_576)]] = Field(
        min_length=1, max_length=3, description="Shape of one sample, without the batch axis: (features), (channels, length), (channels, height, width), or (sequence length) for token ids."
    )
    input_dtype: Literal["float", "long"] | None = Field(None, description="'long' for token ids; default: 'long' when the first layer is an embedding, else 'float'.")
    layers: list[Layer] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _default_dtype_and_auto(self):
        if self.input_dtype is None:
            self.input_dtype = "long" if self.layers[0].type == "embedding" else "float"
        linears = [i for i, layer in enumerate(self.layers) if layer.type == "linear"]
        for i in linears[:-1]:
            if self.layers[i].out_features == "auto":
                raise ValueError(f"layer {i} (linear): out_features 'auto' is only allowed on the last linear layer")
        return self
