"""Per-epoch metrics: ``PREFIX-metrics.csv`` and the training curve ``PREFIX-curve.png``, rewritten every epoch.

A resumed run reads the rows up to its starting epoch back, so the file and the curve continue across resumes.
"""
import csv
import os

from lightcnn import files

COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "verify_accuracy", "seconds",
           "samples_per_sec")


def epoch_row(epoch, lr, train, val, seconds, verify_accuracy=None):
    """One CSV row (``epoch`` counts finished epochs, like the checkpoint numbers)."""
    return {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_accuracy": train["accuracy"],
            "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"), "verify_accuracy": verify_accuracy,
            "seconds": seconds, "samples_per_sec": train["samples_per_sec"]}


class MetricsLog:
    """The rows of one run, written to ``csv_path`` and drawn to ``png_path`` after each epoch."""

    def __init__(self, prefix, resume_epoch=0):
        self.csv_path, self.png_path = f"{prefix}-metrics.csv", f"{prefix}-curve.png"
        self.rows = self._read(resume_epoch) if resume_epoch else []

    def _read(self, up_to_epoch):
        if not os.path.exists(self.csv_path):
            return []
        with open(self.csv_path, newline="") as f:
            rows = [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                    for row in csv.DictReader(f)]
        for row in rows:
            row["epoch"] = int(row["epoch"])
        return [row for row in rows if row["epoch"] <= up_to_epoch]

    def add(self, row):
        self.rows.append(row)

    def write(self):
        columns = [c for c in COLUMNS if any(row.get(c) is not None for row in self.rows) or c in
                   ("val_loss", "val_accuracy")]
        with files.atomic_path(self.csv_path) as temp:
            with open(temp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                writer.writeheader()
                writer.writerows({k: ("" if row.get(k) is None else row[k]) for k in columns} for row in self.rows)
        self._plot()

    def _plot(self):
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:  # the curve is a convenience; the CSV has the numbers
            return
        fig = Figure(figsize=(10, 4))
        FigureCanvasAgg(fig)
        ax_loss, ax_acc = fig.subplots(1, 2)
        epochs = [row["epoch"] for row in self.rows]
        for ax, series, ylabel in ((ax_loss, (("train_loss", "o-", "train"), ("val_loss", "s-", "validation")),
                                    "softmax cross-entropy"),
                                   (ax_acc, (("train_accuracy", "o-", "train"), ("val_accuracy", "s-", "validation"),
                                             ("verify_accuracy", "^-", "verification (10-fold)")), "accuracy")):
            for column, style, label in series:
                if any(row.get(column) is not None for row in self.rows):
                    ax.plot(epochs, [row.get(column) for row in self.rows], style, label=label)
            ax.set(xlabel="epoch", ylabel=ylabel, title=ylabel.split()[-1])
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        with files.atomic_path(self.png_path) as temp:
            fig.savefig(temp, dpi=100, format="png")
