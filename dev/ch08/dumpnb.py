"""dumpnb.py executed.ipynb imgdir: print outputs per cell (text), save images."""
import base64, json, os, sys
nb = json.load(open(sys.argv[1]))
d = sys.argv[2]; os.makedirs(d, exist_ok=True)
for i, c in enumerate(nb["cells"]):
    if c["cell_type"] != "code":
        continue
    meta = c.get("metadata", {}).get("papermill", {})
    print(f"===== cell {i} ({meta.get('duration', 0) or 0:.1f} s)")
    for o in c.get("outputs", []):
        if o["output_type"] == "stream":
            print("".join(o["text"])[-3000:])
        elif o["output_type"] in ("execute_result", "display_data"):
            data = o["data"]
            if "image/png" in data:
                fn = f"{d}/cell{i:02d}_{len(os.listdir(d))}.png"
                open(fn, "wb").write(base64.b64decode(data["image/png"]))
                print("[image]", fn)
            elif "text/plain" in data:
                print("".join(data["text/plain"])[-3000:])
        elif o["output_type"] == "error":
            print("ERROR", o["ename"], o["evalue"])
