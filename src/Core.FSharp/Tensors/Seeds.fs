namespace GroupedNewton

open System

/// Deterministic seed derivation, permutations and normal draws. Never use
/// System.HashCode for seeds: it is randomised per process.
module internal Seeds =
    /// Mixes two integers into a new seed (SplitMix64 finaliser): the same pair always
    /// gives the same seed, nearby pairs give unrelated seeds.
    let mix (a: int) (b: int) : int =
        let mutable z = (uint64 (uint32 a) <<< 32) ||| uint64 (uint32 b)
        z <- z + 0x9E3779B97F4A7C15UL
        z <- (z ^^^ (z >>> 30)) * 0xBF58476D1CE4E5B9UL
        z <- (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
        z <- z ^^^ (z >>> 31)
        int (uint32 (z ^^^ (z >>> 32)))

    /// A uniformly random permutation of 0 .. n-1 (Fisher-Yates) from System.Random(seed).
    let permutation (seed: int) (n: int) : int[] =
        let p = Array.init n id
        let rng = Random(seed)

        for i in n - 1 .. -1 .. 1 do
            let j = rng.Next(i + 1)
            let t = p.[i]
            p.[i] <- p.[j]
            p.[j] <- t

        p

    /// A standard normal value from two uniforms (Box-Muller).
    let normal (rng: Random) : float =
        let u1 = 1.0 - rng.NextDouble()
        let u2 = rng.NextDouble()
        Math.Sqrt(-2.0 * Math.Log u1) * Math.Cos(2.0 * Math.PI * u2)
