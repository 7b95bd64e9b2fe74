"""Models: what is sampled (see ``base`` for the protocol every model follows).

Spin systems with quenched couplings (``Ising2D``, ``SK``, ``RBM``, ``Hopfield``), perceptrons
(``BinaryPerceptron``, ``SphericalPerceptron``), the Bayesian linear model with its closed-form evidence, and
``weight_ensemble``, which turns any flax model + data + loss + prior into a Gibbs ensemble over its weights.
"""

from . import base, data, exact, hopfield, ising, linear, losses, perceptron, priors, rbm, sk, topologies, weights
from .base import enumerate_states, has_exact, stack_models
from .data import digits, gardner_patterns, load_npz, teacher_student
from .exact import enumerate_log_partition, enumerate_observables, exact_thermodynamics, ising_critical_beta
from .hopfield import Hopfield
from .ising import Ising2D
from .linear import BayesianLinear, linear_evidence
from .perceptron import BinaryPerceptron, SphericalPerceptron
from .priors import binary, gaussian, spherical
from .rbm import RBM
from .sk import SK
from .topologies import MLP, CommitteeMachine, DeepLinear, Perceptron, SmallCNN, count_params
from .weights import weight_ensemble

__all__ = [
    # modules
    "base", "data", "exact", "hopfield", "ising", "linear", "losses", "perceptron", "priors", "rbm", "sk",
    "topologies", "weights",
    # spin models
    "Ising2D", "SK", "RBM", "Hopfield",
    # perceptrons and weight ensembles
    "BinaryPerceptron", "SphericalPerceptron", "BayesianLinear", "linear_evidence", "weight_ensemble",
    "gaussian", "spherical", "binary",
    # topologies
    "Perceptron", "CommitteeMachine", "MLP", "DeepLinear", "SmallCNN", "count_params",
    # data
    "gardner_patterns", "teacher_student", "load_npz", "digits",
    # exact results
    "enumerate_log_partition", "enumerate_observables", "exact_thermodynamics", "ising_critical_beta",
    "enumerate_states", "has_exact", "stack_models",
]
