"""The synthetic gait lab: virtual subjects walking on an instrumented treadmill, in format v1.

It exists so that anyone can run the whole of forcecast with no data of their own, and so that
tests can check the pipeline against known truth. It is physically grounded, not noise with a label.

What is modelled (sources of the ranges in brackets)
-----------------------------------------------------
Subjects
    Height 1.50–1.95 m, BMI 19–38 (knee-OA cohorts are heavier); about 75 % with knee OA on one
    side, the rest controls. Knee alignment ``hka_deg`` (varus positive) spans about −8..+12°:
    controls 1.2 ± 2° varus [Moreland et al. 1987, JBJS 69-A:745], OA knees 2..12° varus (medial
    OA, ~70 %) or −2..−8° valgus (lateral OA) [Sharma et al. 2001, JAMA 286:188]. The other knee
    follows at 60 % of the index knee's deviation.
Speed and timing
    Comfortable speed ≈ 1.36 m/s scaled by √(H/1.70), 15 % slower with severe OA [Mündermann et
    al. 2005, Arthritis Rheum 52:2835]; slow/fast = 0.75/1.25×. Step length 0.415 H (v/1.3)^0.55
    gives 95–125 steps/min [Grieve & Gear 1966, Ergonomics 9:379]. Stance ≈ 62 % of the stride at
    1.3 m/s, longer when slower [Perry & Burnfield 2010, Gait Analysis]. Strides vary by 2 % with
    persistence [Hausdorff et al. 1995, J Appl Physiol 78:349].
Ground reaction force (per foot, split-belt treadmill at 1 kHz)
    Double-hump vertical force, first peak 1.0–1.3 BW rising with speed [Keller et al. 1996, Clin
    Biomech 11:253; Nilsson & Thorstensson 1989, Acta Physiol Scand 136:217], valley solved so that
    both feet carry exactly one body weight over a stride; heel-strike impact transient; braking then
    propulsive AP force (≈0.1–0.25 BW) balanced over stance; small ML force (lateral just after heel
    strike, then medial, ≈0.02–0.09 BW) [Winter 2009, Biomechanics and Motor Control of Human
    Movement]. Swing is exactly 0 N (vertical below 20 N is zeroed, as lab software does).
Knee alignment → medial loading
    The medial force of each foot grows by 0.0035 BW per degree of varus of that knee, the GRF face
    of the higher medial compartment load of varus knees [Hurwitz et al. 2002, J Orthop Res 20:101;
    Sharma et al. 2001]. The IMUs see alignment only partly: as a static frontal tilt of the shank
    (half the HKA), which the per-session mounting misalignment of the sensor (±4° roll) masks, and as
    a varus thrust in early stance that only about 40 % of varus OA knees show [Chang et al. 2004,
    Arthritis Rheum 50:3897]. A personal ML gain (±15 %, footwear and foot placement) is invisible
    to everything. So a model given ``hka_deg`` can predict ML force better than one without it.
OA adaptation of the affected side
    Lower first peak (−8 % × severity), shorter stance and a smaller share of the load, less stance
    knee flexion (−45 % × severity) and swing flexion [Mündermann et al. 2005; Astephen et al. 2008,
    J Orthop Res 26:332], less braking, step-time asymmetry, larger pelvic obliquity.
IMUs (feet, shanks, thighs, pelvis)
    Segments follow normative joint-angle curves [Kadaba et al. 1990, J Orthop Res 8:383] scaled
    with speed and band-limited to 12 Hz; segment lengths from Winter's anthropometric table. The
    pelvis accelerates with the centre of mass, i.e. with the sum of both GRFs over body mass, so
    the IMUs and the force plates agree. Heel strikes send a few-g shock up the foot and shank and
    make the thigh's soft tissue wobble. Each sensor measures specific force (gravity included) and
    angular rate in its own frame with mounting misalignment, turn-on bias, scale error, white
    noise, gyro drift, its own anti-alias filter and rate (100, 104, 128 or 200 Hz per session),
    16-bit quantisation and ±16 g / ±2000 °/s saturation.

Hard preset (``SynthConfig(preset="hard")``, ``[synth] preset = "hard"``)
    What real recordings hold, for end-to-end tests: each sensor placed on its segment's skin (lateral
    thigh and shank, dorsal foot, sacrum) turned by any angle about the skin's normal and tilted by its
    curvature, drawn per subject session; a vendor's axis convention (permutations with sign flips);
    soft-tissue motion of each sensor against its bone (a slow wobble of about 1° and a damped
    oscillation after every heel strike, loosest on the thigh); a quarter of the body masses written
    blank. Each can also be set on its own (``mounting``, ``vendor_frames``, ``soft_tissue``,
    ``unknown_mass_fraction``). The default ``easy`` preset is the demo lab described above.

Not modelled: overground gait initiation, turns, stairs, running, trunk sensors, magnetometers,
and clock drift between IMU and force plate (both share one clock here).
"""

from forcecast.lab.synth.config import SPEED_FACTORS, SynthConfig
from forcecast.lab.synth.lab import generate_dataset, static_trial, subjects_for, walking_trial
from forcecast.lab.synth.population import VirtualSubject, make_subject

__all__ = [
    "SPEED_FACTORS",
    "SynthConfig",
    "VirtualSubject",
    "generate_dataset",
    "make_subject",
    "static_trial",
    "subjects_for",
    "walking_trial",
]
