"""The three Processing algorithms: parameter translation around xr_unmixsr's functions.

Each ``processAlgorithm`` reads its parameters, calls the core (``open_raster``, ``upscale``,
``write_raster``, ``unmix``, ``write_unmixing``, ``train_sr``) and returns the written paths;
there is no raster logic here. The core keeps CRS and (scaled) transform, writes atomically
(a cancelled or failed run leaves no output) and raises errors whose messages say what to do;
:mod:`.bridge` turns them into :class:`QgsProcessingException`.
"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingMultiStepFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProviderRegistry,
)

from .bridge import core_errors, core_value, import_core, reporter

_INT = QgsProcessingParameterNumber.Integer
_DOUBLE = QgsProcessingParameterNumber.Double


class _Algorithm(QgsProcessingAlgorithm):
    """What the three algorithms share: names, help built from the parameters' help, inputs."""

    NAME = ""
    DISPLAY_NAME = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:
        return self.DISPLAY_NAME

    def createInstance(self) -> _Algorithm:
        return type(self)()

    def shortHelpString(self) -> str:
        """The algorithm's help, then every parameter's and output's, as the dialog shows it."""
        params = "".join(
            f"<li><b>{p.description()}</b> (<code>{p.name()}</code>): {p.help()}</li>"
            for p in self.parameterDefinitions()
        )
        outputs = "".join(
            f"<li><b>{o.description()}</b> (<code>{o.name()}</code>)</li>"
            for o in self.outputDefinitions()
        )
        return f"{self.HELP}<h3>Parameters</h3><ul>{params}</ul><h3>Outputs</h3><ul>{outputs}</ul>"

    def _add(
        self, param: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False
    ) -> None:
        param.setHelp(help_text)
        if advanced:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(param)

    def _add_input(self) -> None:
        self._add(
            QgsProcessingParameterRasterLayer("INPUT", "Input hyperspectral raster"),
            "a file-based raster layer (GeoTIFF, ENVI...; one band per wavelength). Per-band "
            "wavelength/fwhm tags are kept; the nodata value marks missing values.",
        )

    def _add_engine(self, chunk: bool = True) -> None:
        """TILE, BATCH_SIZE, DEVICE (and CHUNK): how the network runs over the scene."""
        self._add(
            QgsProcessingParameterNumber("TILE", "Tile size (pixels)", _INT, 256, minValue=1),
            "patch size fed to the network; the result is the same for any tile size (no "
            "seams), memory grows with it.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", _INT, 8, minValue=1),
            "patches per network call.",
            advanced=True,
        )
        self._add_device()
        if chunk:
            self._add_chunk()

    def _add_device(self) -> None:
        self._add(
            QgsProcessingParameterString("DEVICE", "Device", "auto"),
            "torch device: auto (CUDA when available), cpu, cuda or cuda:N.",
            advanced=True,
        )

    def _add_chunk(self) -> None:
        self._add(
            QgsProcessingParameterNumber("CHUNK", "Block size (pixels)", _INT, 512, minValue=16),
            "the input is read and the output written in blocks of this size: peak memory "
            "follows it, and progress and cancel act per block.",
            advanced=True,
        )

    def _input_path(
        self, parameters: dict[str, Any], context: QgsProcessingContext, name: str = "INPUT"
    ) -> str:
        """The file behind a raster layer parameter (the core reads files, not QGIS layers)."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"layer {layer.name()!r} is not a file-based raster ({layer.providerType()}): "
                "export it to a GeoTIFF first"
            )
        return QgsProviderRegistry.instance().decodeUri("gdal", layer.source())["path"]

    def _chunks(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, int]:
        chunk = self.parameterAsInt(parameters, "CHUNK", context)
        return {"y": chunk, "x": chunk}

    @staticmethod
    def _unset(parameters: dict[str, Any], name: str) -> bool:
        """Whether an optional parameter was left empty."""
        return parameters.get(name) in (None, "")

    def _optional_int(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> int | None:
        """An optional integer parameter: None when it is not set."""
        if self._unset(parameters, name):
            return None
        return self.parameterAsInt(parameters, name, context)

    def _optional_float(
        self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
    ) -> float | None:
        """An optional decimal parameter: None when it is not set."""
        if self._unset(parameters, name):
            return None
        return self.parameterAsDouble(parameters, name, context)

    def _engine(self, parameters: dict[str, Any], context: QgsProcessingContext) -> dict[str, Any]:
        return {
            "tile": self.parameterAsInt(parameters, "TILE", context),
            "batch_size": self.parameterAsInt(parameters, "BATCH_SIZE", context),
            "device": self.parameterAsString(parameters, "DEVICE", context),
        }


class UpscaleAlgorithm(_Algorithm):
    """``unmixsr:upscale``: :func:`xr_unmixsr.upscale` and :func:`xr_unmixsr.write_raster`."""

    NAME = "upscale"
    DISPLAY_NAME = "Upscale (hyperspectral super-resolution)"
    HELP = (
        "Super-resolves a hyperspectral raster by an integer factor with bicubic interpolation "
        "or a learned model (a shipped one, or a checkpoint from <i>Train SR model</i>). The "
        "output is a tiled GeoTIFF with the input's bands, CRS and bounds, on a grid SCALE "
        "times finer (the transform's pixel size divided by SCALE). Missing input values stay "
        "missing in the output, with the input's nodata value."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.models = core_value("models.available_models", ["bicubic"])
        self._add_input()
        self._add(
            QgsProcessingParameterNumber("SCALE", "Scale factor", _INT, 4, minValue=2),
            "upsampling factor: 2, 3, 4 or 8 for bicubic; a learned model upscales by the "
            "factor it was trained for.",
        )
        self._add(
            QgsProcessingParameterEnum("MODEL", "Model", self.models, defaultValue=0),
            "bicubic, or a shipped model (its name ends in its scale, e.g. -x4); ignored when a "
            "model file is given.",
        )
        self._add(
            QgsProcessingParameterFile(
                "MODEL_FILE", "Model file (checkpoint)", extension="safetensors", optional=True
            ),
            "a trained checkpoint (.safetensors with its .json card beside it), e.g. the output "
            "of Train SR model; overrides Model.",
        )
        self._add(
            QgsProcessingParameterNumber(
                "BACK_PROJECTION", "Back-projection steps", _INT, 0, minValue=0, maxValue=50
            ),
            "steps of iterative back-projection after the model: the output, degraded to the "
            "input's resolution, then gives the input back. 0 is off; 5 converges and adds "
            "0.1 to 1 dB of PSNR on the benchmark scenes.",
        )
        self._add(
            QgsProcessingParameterBoolean("SELF_ENSEMBLE", "Self-ensemble", defaultValue=False),
            "average the model over the 8 flips and quarter turns of every tile: 0.08 to 0.16 dB "
            "better for the learned models, 8 times slower.",
        )
        self._add_engine()
        self._add(
            QgsProcessingParameterRasterDestination("OUTPUT", "Upscaled raster"),
            "the super-resolved GeoTIFF (written to a temporary name and renamed when complete).",
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        core = import_core()
        from xr_unmixsr.io import open_raster

        path = self._input_path(parameters, context)
        model_file = self.parameterAsFile(parameters, "MODEL_FILE", context)
        model = model_file or self.models[self.parameterAsEnum(parameters, "MODEL", context)]
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        with core_errors():
            cube = open_raster(path, chunks=self._chunks(parameters, context))
            sr = core.upscale(
                cube,
                self.parameterAsInt(parameters, "SCALE", context),
                model,
                back_projection=self.parameterAsInt(parameters, "BACK_PROJECTION", context),
                self_ensemble=self.parameterAsBool(parameters, "SELF_ENSEMBLE", context),
                **self._engine(parameters, context),
            )
            feedback.pushInfo(f"upscaling {dict(cube.sizes)} to {dict(sr.sizes)} with {model}")
            core.write_raster(sr, out, overwrite=True, on_progress=reporter(feedback))
        return {"OUTPUT": out}


class UnmixAlgorithm(_Algorithm):
    """``unmixsr:unmix``: :func:`xr_unmixsr.unmix` and :func:`xr_unmixsr.unmixing.scene.write_unmixing`."""

    NAME = "unmix"
    DISPLAY_NAME = "Unmix (endmembers and abundance maps)"
    HELP = (
        "Linear spectral unmixing: estimates endmember spectra and, for every pixel, the "
        "abundance (fraction, >= 0, summing to 1) of each endmember. Methods: <b>vca-fcls</b> "
        "(VCA endmembers, or given ones, and fully constrained least squares; seconds), "
        "<b>autoencoder</b> (the unmixing autoencoder of UnmixingSR trained on the scene; "
        "minutes on a CPU) and <b>smile</b> (SR-guided unmixing network). With SCALE, the "
        "abundances are on a grid SCALE times finer than the input's. Writes the abundance "
        "GeoTIFF (one band per endmember, the band descriptions are the endmember names), "
        "OUTPUT_rmse.tif (per-pixel reconstruction error) "
        "and OUTPUT_endmembers.csv (one row per band, one column per endmember) beside it."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.methods = core_value("unmixing.scene.METHODS", ["vca-fcls"])
        self._add_input()
        self._add(
            QgsProcessingParameterNumber(
                "N_ENDMEMBERS", "Number of endmembers", _INT, None, optional=True, minValue=1
            ),
            "2 to the number of bands; empty: estimated from the data (HFC virtual "
            "dimensionality), or the count of the given endmembers.",
        )
        self._add(
            QgsProcessingParameterEnum("METHOD", "Method", self.methods, defaultValue=0),
            "vca-fcls, autoencoder or smile (see above).",
        )
        self._add(
            QgsProcessingParameterNumber(
                "SCALE",
                "Scale factor (finer abundance grid)",
                _INT,
                None,
                optional=True,
                minValue=1,
            ),
            "Empty: abundances on the input's grid. 2, 3, 4 or 8: on a grid that many times "
            "finer; smile (which needs it) predicts them with its network, vca-fcls and "
            "autoencoder refine their abundances onto it by back-projection.",
        )
        self._add(
            QgsProcessingParameterBoolean(
                "TYPICAL", "Typical endmembers (refine VCA's extreme pixels)", False
            ),
            "Replace each VCA endmember by the most typical of the pixels most abundant in it: "
            "better on real scenes whose pure pixels vary, worse on noise-free mixtures. Also "
            "the initial endmembers of autoencoder and smile. Not with known endmembers or a "
            "trained model.",
        )
        self._add(
            QgsProcessingParameterFile(
                "ENDMEMBERS",
                "Known endmembers (spectral library)",
                optional=True,
                fileFilter="Endmember table (*.csv);;Raster spectral library (*.tif *.tiff "
                "*.img *.hdr *.bsq);;All files (*)",
            ),
            "vca-fcls only: known spectra instead of VCA. A CSV as this algorithm writes it "
            "(one row per band, one column per endmember, names in the header), or a raster "
            "with the input's bands whose pixels are the spectra. Must have the input's bands.",
        )
        self._add(
            QgsProcessingParameterFile(
                "MODEL_FILE",
                "Trained unmixing model (autoencoder/smile)",
                extension="safetensors",
                optional=True,
            ),
            "autoencoder/smile: a trained checkpoint to apply instead of training on the scene.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "EPOCHS", "Training epochs (autoencoder/smile)", _INT, None, True, 1
            ),
            "autoencoder/smile: epochs of training on the scene (empty: 20).",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "STEPS_PER_EPOCH", "Steps per epoch (autoencoder/smile)", _INT, None, True, 1
            ),
            "autoencoder/smile: optimiser steps per epoch (empty: 50).",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("SEED", "Random seed", _INT, 0, minValue=0),
            "seed of the pixel sample, of VCA and of the training: the same seed gives the "
            "same result.",
            advanced=True,
        )
        self._add_engine()
        self._add(
            QgsProcessingParameterRasterDestination("OUTPUT", "Abundance maps"),
            "the abundance GeoTIFF; OUTPUT_rmse.tif and OUTPUT_endmembers.csv are written "
            "beside it, all three together or none.",
        )
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT_RMSE", "Reconstruction RMSE"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_ENDMEMBERS", "Endmember spectra (CSV)"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        core = import_core()
        from xr_unmixsr.io import ProgressCallback, open_raster, read_endmembers
        from xr_unmixsr.unmixing.scene import write_unmixing

        path = self._input_path(parameters, context)
        method = self.methods[self.parameterAsEnum(parameters, "METHOD", context)]
        endmembers = self.parameterAsFile(parameters, "ENDMEMBERS", context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        trains = method != "vca-fcls" and not self.parameterAsFile(
            parameters, "MODEL_FILE", context
        )
        steps = QgsProcessingMultiStepFeedback(2 if trains else 1, feedback)
        training = {
            key: value
            for key, value in (
                ("epochs", self._optional_int(parameters, "EPOCHS", context)),
                ("steps_per_epoch", self._optional_int(parameters, "STEPS_PER_EPOCH", context)),
            )
            if value is not None
        }
        with core_errors():
            cube = open_raster(path, chunks=self._chunks(parameters, context))
            if trains:
                feedback.pushInfo(f"training the {method} on the scene")
            res = core.unmix(
                cube,
                self._optional_int(parameters, "N_ENDMEMBERS", context),
                method,
                read_endmembers(endmembers) if endmembers else None,
                scale=self._optional_int(parameters, "SCALE", context),
                typical=self.parameterAsBoolean(parameters, "TYPICAL", context),
                model=self.parameterAsFile(parameters, "MODEL_FILE", context) or None,
                training={**training, "on_progress": reporter(steps)},
                seed=self.parameterAsInt(parameters, "SEED", context),
                **self._engine(parameters, context),
            )
            steps.setCurrentStep(1 if trains else 0)
            feedback.pushInfo(f"writing {res.attrs['n_endmembers']} abundance maps")
            with ProgressCallback(reporter(steps)):
                paths = write_unmixing(res, out, overwrite=True, progress=False)
        return {
            "OUTPUT": str(paths["abundances"]),
            "OUTPUT_RMSE": str(paths["rmse"]),
            "OUTPUT_ENDMEMBERS": str(paths["endmembers"]),
        }


class TrainAlgorithm(_Algorithm):
    """``unmixsr:train``: :func:`xr_unmixsr.training.train_sr` on one scene."""

    NAME = "train"
    DISPLAY_NAME = "Train SR model"
    HELP = (
        "Trains a super-resolution network on the input scene, self-supervised: the scene is "
        "the high-resolution side and its degraded copy the low-resolution side, so no "
        "reference image is needed. The checkpoint (.safetensors, with a .json model card "
        "beside it) is the Model file of <i>Upscale</i>. The training state is saved beside it "
        "after every epoch: running again with the same settings continues from there (also "
        "after a cancel), unless Resume is off. CPU training takes minutes per epoch on a "
        "real scene; use a GPU (Device) for long runs."
    )

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        self.architectures = core_value("training.ARCHITECTURES", ["unmixingsr"])
        self.degradations = core_value("training.DEGRADATIONS", ["bicubic"])
        self._add_input()
        self._add(
            QgsProcessingParameterNumber("SCALE", "Scale factor", _INT, 4, minValue=2),
            "the SR factor the model learns: 2, 3, 4 or 8.",
        )
        self._add(
            QgsProcessingParameterEnum(
                "ARCHITECTURE", "Architecture", self.architectures, defaultValue=0
            ),
            "unmixingsr (UnmixingSR with its material-aware module and auxiliary unmixing), "
            "unmixingsr-nomam, convsr, convsr-aux or unmixingsr-aux (baselines and ablations).",
        )
        self._add(
            QgsProcessingParameterString(
                "MODEL", "Fine-tune this model (name or checkpoint)", optional=True
            ),
            "empty: train a new network. Else a shipped model's name or a checkpoint path: "
            "training starts from its weights, keeps its shape and normalisation, and "
            "Architecture must be one that trains it (unmixingsr for the shipped models). The "
            "scene must have the model's bands.",
        )
        self._add(
            QgsProcessingParameterNumber("EPOCHS", "Epochs", _INT, 100, minValue=1),
            "epochs in total (counting those of a resumed run).",
        )
        self._add(
            QgsProcessingParameterNumber(
                "STEPS_PER_EPOCH", "Steps per epoch", _INT, 100, minValue=1
            ),
            "optimiser steps per epoch (UnmixingSR runs as many unmixing steps besides).",
        )
        self._add(
            QgsProcessingParameterNumber("PATCH", "Patch size (pixels)", _INT, 64, minValue=2),
            "high-resolution training patch size, a multiple of the scale factor.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", _INT, 8, minValue=1),
            "patches per optimiser step.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "LR", "Learning rate", _DOUBLE, 5e-4, minValue=0.0, maxValue=1.0
            ),
            "initial learning rate of Adam.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "LR_HALVING_EPOCHS", "Halve the learning rate every N epochs", _INT, 40, False, 0
            ),
            "0: never.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "AE_EPOCHS", "Unmixing epochs (step I)", _INT, None, True, 1
            ),
            "train the unmixing autoencoder in the first N epochs only (empty: every epoch).",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "N_ENDMEMBERS", "Endmembers of the auxiliary unmixing", _INT, 8, minValue=2
            ),
            "endmembers of the autoencoder inside UnmixingSR.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("FEATURES", "Feature channels", _INT, 32, minValue=1),
            "width of the network.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("N_GRAMS", "GRAM blocks", _INT, 4, minValue=1),
            "depth of the UnmixingSR body.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterEnum(
                "DEGRADATION", "Degradation", self.degradations, defaultValue=0
            ),
            "how the low-resolution side is made from the scene: bicubic (antialiased) or "
            "gaussian (a Gaussian PSF, then decimation). Ignored with a paired LR raster.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber(
                "GAUSSIAN_SIGMA", "Gaussian PSF sigma (HR pixels)", _DOUBLE, None, True, 0.01
            ),
            "gaussian degradation: the PSF's standard deviation (empty: 0.5 x scale).",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterRasterLayer("LR_INPUT", "Paired LR raster", optional=True),
            "paired training: a co-registered raster of the same scene at 1/scale of the "
            "input's resolution, used instead of degrading the input.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterNumber("SEED", "Random seed", _INT, 0, minValue=0),
            "seed of the initialisation and of the patch draws.",
            advanced=True,
        )
        self._add(
            QgsProcessingParameterBoolean("RESUME", "Resume a saved training state", True),
            "continue from the training state beside the output when there is one with the "
            "same settings; off: start afresh.",
            advanced=True,
        )
        self._add_device()
        self._add_chunk()
        self._add(
            QgsProcessingParameterFileDestination(
                "OUTPUT", "Model checkpoint", fileFilter="Checkpoint (*.safetensors)"
            ),
            "the trained model (.safetensors; its .json card and the training state "
            "(.train.safetensors/.train.json) go beside it).",
        )

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        import_core()
        from xr_unmixsr.io import open_raster
        from xr_unmixsr.training import train_sr

        path = self._input_path(parameters, context)
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        sampler_kwargs: dict[str, Any] = {
            "degradation": self.degradations[
                self.parameterAsEnum(parameters, "DEGRADATION", context)
            ],
            "gaussian_sigma": self._optional_float(parameters, "GAUSSIAN_SIGMA", context),
        }
        with core_errors():
            cube = open_raster(path, chunks=self._chunks(parameters, context))
            if not self._unset(parameters, "LR_INPUT"):
                lr_path = self._input_path(parameters, context, "LR_INPUT")
                sampler_kwargs["lr_cubes"] = [
                    open_raster(lr_path, chunks=self._chunks(parameters, context))
                ]
            result = train_sr(
                [cube],
                self.parameterAsInt(parameters, "SCALE", context),
                architecture=self.architectures[
                    self.parameterAsEnum(parameters, "ARCHITECTURE", context)
                ],
                n_endmembers=self.parameterAsInt(parameters, "N_ENDMEMBERS", context),
                features=self.parameterAsInt(parameters, "FEATURES", context),
                n_grams=self.parameterAsInt(parameters, "N_GRAMS", context),
                epochs=self.parameterAsInt(parameters, "EPOCHS", context),
                steps_per_epoch=self.parameterAsInt(parameters, "STEPS_PER_EPOCH", context),
                patch=self.parameterAsInt(parameters, "PATCH", context),
                batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
                lr=self.parameterAsDouble(parameters, "LR", context),
                lr_halving_epochs=self.parameterAsInt(parameters, "LR_HALVING_EPOCHS", context)
                or None,
                ae_epochs=self._optional_int(parameters, "AE_EPOCHS", context),
                model=self.parameterAsString(parameters, "MODEL", context) or None,
                seed=self.parameterAsInt(parameters, "SEED", context),
                device=self.parameterAsString(parameters, "DEVICE", context),
                checkpoint=out,
                resume=self.parameterAsBool(parameters, "RESUME", context),
                progress=False,
                on_progress=reporter(feedback),
                sampler_kwargs=sampler_kwargs,
                info={"command": f"QGIS unmixsr:train on {path}"},
            )
        feedback.pushInfo(
            f"{len(result.history)} epochs on {result.device}, final losses {result.final_losses}"
        )
        return {"OUTPUT": str(result.checkpoint)}
