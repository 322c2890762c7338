"""The learning rate as a pure function of the epoch (MXNet fit.py's rule), and the optional plateau drops.

Nothing here is mutable state a resume could forget: the rate of epoch e follows from the settings, and the plateau's
own state travels in the checkpoint.
"""
import mxnet as mx


def parse_steps(text):
    """'0,100' -> (0, 100); '' -> ()."""
    if text is None or str(text).strip() == "":
        return ()
    try:
        return tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        raise ValueError(f"takes comma-separated epochs such as '30,60', got {text!r}") from None


def lr_at(epoch, base_lr, factor, steps, plateau_drops=0):
    """MXNet fit.py's rule: the rate is multiplied by ``factor`` once for every step s with epoch >= s (so
    ``--lr 1e-4 --lr-step-epochs 0,100`` trains at 1e-5 from epoch 0 and 1e-6 from epoch 100), and once more for
    every plateau drop so far."""
    return base_lr * factor ** (sum(epoch >= s for s in steps) + plateau_drops)


def server_lr_schedule(base_lr, factor, steps, begin_epoch, updates_per_epoch):
    """``lr_at`` as a function of the servers' update count, for dist_async, where the servers apply the updates
    (each worker's push is one update, so an epoch is about ``updates_per_epoch`` = batches x workers). None when the
    rate no longer changes."""
    later = [s - begin_epoch for s in steps if s > begin_epoch]
    if not later:
        return None
    return mx.lr_scheduler.MultiFactorScheduler(step=[s * updates_per_epoch for s in sorted(later)], factor=factor,
                                                base_lr=lr_at(begin_epoch, base_lr, factor, steps))


class Plateau:
    """Drop the rate by the factor when validation loss has not improved for ``patience`` epochs (0: never).
    ``state()`` goes into the checkpoint, so a resume keeps counting where the run stopped."""

    def __init__(self, patience, best=None, bad_epochs=0, drops=0):
        self.patience, self.best, self.bad_epochs, self.drops = patience, best, bad_epochs, drops

    def update(self, val_loss):
        """Record an epoch's validation loss; True when the rate should drop from the next epoch on."""
        if not self.patience or val_loss is None:
            return False
        if self.best is None or val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.bad_epochs, self.drops = 0, self.drops + 1
            return True
        return False

    def state(self):
        return {"best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops}
