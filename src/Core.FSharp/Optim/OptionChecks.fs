namespace GroupedNewton

open System

/// The range checks that option records share; `owner` names the optimizer or the trainer
/// at the head of the message, `name` the setting (also the ArgumentException's parameter).
module internal OptionChecks =

    /// A count that must be at least 1.
    let atLeastOne (owner: string) (name: string) (value: int) =
        if value < 1 then
            invalidArg name (sprintf "%s: %s must be at least 1, got %d" owner name value)

    /// A count that must not be negative.
    let nonNegativeCount (owner: string) (name: string) (value: int) =
        if value < 0 then
            invalidArg name (sprintf "%s: %s must be non-negative, got %d" owner name value)

    /// A finite number that must not be negative.
    let nonNegative (owner: string) (name: string) (value: float) =
        if not (Double.IsFinite value) || value < 0.0 then
            invalidArg name (sprintf "%s: %s must be non-negative, got %g" owner name value)

    /// A finite number that must be above 0.
    let positive (owner: string) (name: string) (value: float) =
        if not (Double.IsFinite value) || value <= 0.0 then
            invalidArg name (sprintf "%s: %s must be positive, got %g" owner name value)

    /// A number in [0, 1).
    let unitInterval (owner: string) (name: string) (value: float) =
        if not (value >= 0.0 && value < 1.0) then
            invalidArg name (sprintf "%s: %s must be in [0, 1), got %g" owner name value)
