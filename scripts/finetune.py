"""Fine-tune the configured encoder into a cross-encoder on the in-domain training queries; save an HF folder."""

from irneurons.rankers import encoding
from irneurons.retrieval import finetune
from irneurons.rankers import loading as model
from irneurons.workflow.jobs import job_device
from irneurons.workflow.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
mcfg, fcfg = snakemake.params.model, dict(snakemake.params.finetune)
fcfg.setdefault("seed", snakemake.params.seed)
cfg = finetune.FinetuneConfig.from_dict({**fcfg, "max_length": mcfg["max_length"],
                                        "max_query_share": mcfg.get("max_query_share", encoding.DEFAULT_QUERY_SHARE)})
tables = finetune.training_tables(snakemake.input.queries, snakemake.input.qrels, snakemake.input.candidates,
                                  snakemake.input.docs, snakemake.params.relevant_min_grade)
data = finetune.training_data(tables, cfg.group_size, cfg.pseudo_queries, cfg.seed)
device = job_device(snakemake)
net, tokenizer = model.load_cross_encoder(mcfg["source"], mcfg.get("num_labels"), device, seed=cfg.seed,
                                          max_query_share=cfg.max_query_share)
teacher = finetune.load_teacher_scores(snakemake.input.teacher) if "teacher" in snakemake.input.keys() else None
info = finetune.finetune(net, tokenizer, data, cfg, teacher=teacher)
net.save_pretrained(snakemake.output.model)
tokenizer.save_pretrained(snakemake.output.model)
prov = stamp(snakemake.config, cfg.seed, base_model=mcfg["source"], device=device, numerics=info["numerics"])
finetune.save_train_log(snakemake.output.train_log, {**info, "provenance": prov})
model.write_model_ref(snakemake.output.ref, "./" + snakemake.output.model, {**mcfg, "num_labels": net.config.num_labels},
                      finetuned=True, provenance=prov)
