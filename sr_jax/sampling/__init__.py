"""Inference-time use of the discriminator: collaborative sampling and discriminator shaping."""

from sr_jax.sampling.collaborative import CollaborativeSampler, make_collaborative_sampler, sampler_from_config, \
    window_scores

__all__ = ["CollaborativeSampler", "make_collaborative_sampler", "sampler_from_config", "window_scores"]
