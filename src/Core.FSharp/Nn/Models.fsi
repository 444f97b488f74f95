namespace GroupedNewton

/// <summary>The models of the three papers, built by <c>Model.sequential</c>.</summary>
/// <remarks>Every model takes an <c>InitOptions</c>: its parameters have that dtype (float32 with
/// <c>Init.reference</c> and <c>Init.pytorch</c>) and are drawn from its seed. Shapes are per
/// sample; the batch dimension comes first at run time.</remarks>
module Models =
    /// <summary>A multilayer perceptron on inputs of any shape (flattened first): Linear layers of
    /// the given sizes (input size first, number of outputs last), the activation between them and
    /// none after the last.</summary>
    /// <exception cref="GroupedNewton.ShapeMismatchException">the first size is not the element count of inputShape.</exception>
    val mlpOn: inputShape: int[] -> sizes: int list -> activation: Activation -> init: InitOptions -> Model

    /// <summary>An MLP on flat inputs of size <c>sizes.Head</c> (the reference is 784-1024-200-100-10 with tanh).</summary>
    val mlp: sizes: int list -> activation: Activation -> init: InitOptions -> Model

    /// <summary>LeNet-5 with another activation in place of tanh (the model name says which).</summary>
    val lenet5With: activation: Activation -> channels: int -> pixels: int -> init: InitOptions -> Model

    /// <summary>LeNet-5 on [channels; pixels; pixels] images (1 or 3 channels of 28 or 32 pixels): conv 6 (5×5) → tanh →
    /// max-pool 2 → conv 16 (5×5) → tanh → max-pool 2 → fc 120 → tanh → fc 84 → tanh → fc 10.</summary>
    val lenet5: channels: int -> pixels: int -> init: InitOptions -> Model

    /// <summary>VGG-11 with another activation in place of ELU (the model name says which).</summary>
    val vgg11With: activation: Activation -> init: InitOptions -> Model

    /// <summary>VGG-11 ('A' configuration) without batch norm on [3; 32; 32] images: 3×3 convolutions
    /// with padding 1 and ELU, max-pool 2 after each block, one linear classifier 512 → 10.</summary>
    /// <remarks>The reference initialises it with σ_w = √2 (<c>InitScheme.ScaledNormal(sqrt 2.0, 0.0)</c>).</remarks>
    val vgg11: init: InitOptions -> Model

    /// <summary>The MNIST autoencoder with another activation in place of ReLU (the model name says which).</summary>
    val mnistAutoencoderWith: activation: Activation -> init: InitOptions -> Model

    /// <summary>The MNIST autoencoder of the K-BFGS paper on [784] inputs: 784-1000-500-250-30-250-500-1000-784
    /// with ReLU, except after the (linear) code layer and the output, which gives logits for <c>Losses.bceWithLogits</c>.</summary>
    val mnistAutoencoder: init: InitOptions -> Model
