"""The peers' shared space, model and data: what bench/peers.yaml says, in plain Keras.

Every peer trains exactly this MLP (nnsweep's architecture, compiled with Keras defaults) on
``nnsweep.data.load.load_dataset('mnist_5k', validation=0.1, seed=…)``: 3,600 train / 400
validation digits (mnist_5k keeps 1,000 of its 5,000 digits as a test split nobody reads here).
"""

from __future__ import annotations

ACTIVATIONS = ["relu", "tanh", "sigmoid", "elu", "selu"]
OPTIMIZERS = ["sgd", "rmsprop", "adam"]
EPOCHS = 10
BATCH_SIZE = 128


def peer_data(seed: int):
    from nnsweep.data.load import load_dataset

    return load_dataset("mnist_5k", validation=0.1, seed=seed)


def build_peer_model(units, activation: str, optimizer: str, learning_rate: float):
    import keras

    init = "lecun_normal" if activation == "selu" else "glorot_uniform"
    layers = [keras.Input(shape=(784,))]
    layers += [
        keras.layers.Dense(int(u), activation=activation, kernel_initializer=init) for u in units
    ]
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    opt = {
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
        "adam": keras.optimizers.Adam,
    }[optimizer](learning_rate)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
